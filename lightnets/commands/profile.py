"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.tools.profile import main  # noqa: F401
