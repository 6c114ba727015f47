"""TEMPORARY shim during the redesign (issue 11)."""

from lightnets.train.predict import main  # noqa: F401
