"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.tools.layers_table import main  # noqa: F401
