"""Public names that load on first use (PEP 562): a package's `__init__` maps each name to the
module that defines it, so that importing the package imports nothing else (lightnets itself, so
that `import lightnets` costs nothing and `lightnets verify` runs without torch; deploy; compare,
so that a trial's Ray worker does not load torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_names(package: str, api: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """(`__getattr__`, `__dir__`) of `package`: each name of `api` ({name: module}) is imported
    from its module on first use and kept in `namespace` (the package's globals), so the next
    lookup is a plain attribute."""

    def __getattr__(name: str):
        if name not in api:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(api[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *api})

    return __getattr__, __dir__
