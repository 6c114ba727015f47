"""Old names that still work until REMOVED_IN, each with the same one-line note.

A renamed keyword argument (`renamed_kwargs`), function (`renamed_function`) or attribute
(`renamed_attribute`) and an old CLI spelling (lightnets.commands._flags.OLD_FLAGS) all say "OLD
is deprecated, use NEW; removed in lightnets 0.2.0": a DeprecationWarning in Python, a note on
stderr in the CLI. RENAMED lists every renamed keyword, function and attribute, so that
tests/test_deprecations.py can check each one, and fail from REMOVED_IN on while any is still
accepted. Only the standard library is imported here.
"""

from __future__ import annotations

import functools
import warnings

REMOVED_IN = "0.2.0"

# (kind, owner, old name, new name), filled as the owners are defined: a "keyword" of a function
# or class, a "function" of a module, an "attribute" of a class
RENAMED: list[tuple[str, str, str, str]] = []


def deprecation_note(old: str, new: str) -> str:
    return f"{old} is deprecated, use {new}; removed in lightnets {REMOVED_IN}"


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """The DeprecationWarning for `old`, pointing at the caller's caller (the user's line)."""
    warnings.warn(deprecation_note(old, new), DeprecationWarning, stacklevel=stacklevel)


def renamed_kwargs(**renames: str):
    """Decorator: a function, or a class's __init__ (a dataclass: the generated one), also takes
    each old keyword of `renames` (old="new"), passes it on as the new one and warns; both at
    once is a TypeError."""

    def decorate(obj):
        func = obj.__init__ if isinstance(obj, type) else obj
        name = obj.__qualname__
        RENAMED.extend(("keyword", name, old, new) for old, new in renames.items())

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= and {new}=")
                    warn_renamed(f"{name}({old}=)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        if isinstance(obj, type):
            obj.__init__ = wrapper
            return obj
        return wrapper

    return decorate


def renamed_function(func, old: str):
    """`func` under its old name `old`: the same call, with a warning."""
    RENAMED.append(("function", func.__module__, old, func.__name__))

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        warn_renamed(old, func.__name__)
        return func(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = old
    wrapper.__doc__ = f"Deprecated: {func.__name__}."
    return wrapper


class renamed_attribute:  # lower case: used like @property
    """A read-only class attribute under its old name: reads the new one and warns."""

    def __init__(self, new: str):
        self.new = new

    def __set_name__(self, owner, name: str) -> None:
        self.old = f"{owner.__qualname__}.{name}"
        RENAMED.append(("attribute", owner.__qualname__, name, self.new))
        self.__doc__ = f"Deprecated: {self.new}."

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        warn_renamed(self.old, self.new)
        return getattr(obj, self.new)
