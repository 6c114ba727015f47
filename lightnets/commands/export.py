"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.tools.export import main  # noqa: F401
