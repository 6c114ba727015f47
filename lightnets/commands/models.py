"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.tools.models_table import main  # noqa: F401
