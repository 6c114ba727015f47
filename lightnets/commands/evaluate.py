"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.train.evaluate import main  # noqa: F401
