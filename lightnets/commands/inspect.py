"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.tools.inspect import main  # noqa: F401
