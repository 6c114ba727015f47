"""Errors a user can fix: the CLI prints them as one line and exits with status 2.

Each subclasses the built-in exception callers already expect (`pytest.raises(ValueError)`,
`except KeyError`), so the Python API is unchanged. Anything else that escapes a command is a bug
in lightnets and keeps its traceback.
"""

from __future__ import annotations


class LightnetsError(Exception):
    """Base class: bad input, an impossible configuration or a missing optional package."""


class ConfigError(LightnetsError, ValueError):
    """An argument, configuration value or input shape that cannot work."""


class UnknownNameError(LightnetsError, KeyError):
    """An unknown model, layer, key or study name; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class CheckpointError(LightnetsError, ValueError):
    """A weights or checkpoint file that is corrupt, truncated, foreign or unsafe to load."""


class MissingDependencyError(LightnetsError, ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def import_optional(module: str, extra: str, needed_by: str):
    """`module`, imported; MissingDependencyError with the pip command that installs it when it is
    not there. The one place that words a missing optional package."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (err.name or module).split(".")[0].replace("_", "-")
        raise MissingDependencyError(
            f"{needed_by} needs {missing}: pip install lightnets[{extra}]"
        ) from None


def unreadable_image_errors() -> tuple[type[BaseException], ...]:
    """What Pillow raises for a truncated, corrupt or foreign image file: the exceptions Pillow's
    own fuzz tests accept (Tests/oss-fuzz/test_fuzzers.py), and EOFError. Catch only these around
    reading one image; anything else is a bug in lightnets and keeps its traceback."""
    from PIL import Image

    return (
        OSError,  # also UnidentifiedImageError and "image file is truncated"
        SyntaxError,  # "broken PNG file" and other malformed headers
        ValueError,
        EOFError,
        MemoryError,
        NotImplementedError,
        OverflowError,
        Image.DecompressionBombError,
    )
