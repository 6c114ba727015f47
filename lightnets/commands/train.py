"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.train.cli import main  # noqa: F401
