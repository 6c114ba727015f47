"""Every input check of a comparison, run before anything is written: model names and input
size, training flags compare passes through (or owns), the output directory."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lightnets._deprecation import renamed_function
from lightnets.compare import variants
from lightnets.compare.spec import CompareSpec
from lightnets.errors import ConfigError, UnknownNameError

# flags of `lightnets train` that compare sets itself: (flag, the compare option to use)
OWNED = {
    "--model": "MODEL arguments", "--data": "--data", "--img-size": "--img-size",
    "--seed": "--seeds", "--run-dir": "-o", "--resume": "re-running the same command",
    "--epochs": "--epochs", "--recipe": "--recipe", "--threads": "--cpus-per-trial",
    "--device": "--gpus-per-trial", "--workers": "--workers", "--progress": "--no-progress",
    "--no-progress": "--no-progress", "--deterministic": "--no-deterministic",
    "--no-deterministic": "--no-deterministic", "--stop-at-epoch": "(not supported)",
    "--arch": "an architecture file as a MODEL argument",
}  # fmt: skip

Event = Callable[[str, "str | None", dict], None]


# ------------------------------------------------------------------------------ input checks


def train_flag_arity() -> dict[str, int]:
    """flag -> number of values it takes, from the parser `lightnets train` parses its flags with
    (lightnets.train.config.build_parser): `--scale MIN MAX` 2, `--strict` / `--no-strict` 0."""
    from lightnets.train.config import build_parser

    arity = {}
    for action in build_parser()._actions:  # argparse lists a parser's options nowhere public
        nargs = action.nargs if isinstance(action.nargs, int) else 1  # None: one value
        arity.update((flag, nargs) for flag in action.option_strings if flag.startswith("--"))
    return arity


def check_train_args(
    train_args: Sequence[str], command: str = "compare", owned: Mapping[str, str] = OWNED
) -> tuple[str, ...]:
    """`train_args` if every flag is a `lightnets train` flag that `command` does not set itself
    (`owned`: flag -> the option of `command` to use instead)."""
    known = None
    for token in train_args:
        if not token.startswith("--"):
            continue
        flag = token.split("=", 1)[0]
        if flag in owned:
            raise ConfigError(f"{flag} is set by {command} for every trial; use {owned[flag]}")
        known = known or train_flag_arity()
        if flag not in known:
            import difflib

            close = difflib.get_close_matches(flag, sorted(known), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown lightnets train flag {flag!r}{hint}")
    return tuple(train_args)


ARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*")


def resolve_models(
    models: Sequence[str], archs: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Canonical registered names (or study-network names, lightnets.compare.variants; or names
    of `archs`, networks built from architecture files); UnknownNameError with close matches,
    ConfigError for an empty list or a repeated model."""
    if not models:
        raise ConfigError("name at least one model to compare")
    archs = archs or {}
    for name in archs:
        if not ARCH_NAME.fullmatch(name):
            raise ConfigError(f"network name {name!r}: use letters, digits, '_' and '.' only")
    names = tuple(m if m in archs else variants.canonical(m) for m in models)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"model {repeated[0]!r} is named twice")
    return names


def _small_input(train_args: Sequence[str]) -> bool | None:
    flags = [a for a in train_args if a in ("--small-input", "--no-small-input")]
    return None if not flags else flags[-1] == "--small-input"


def card(name: str, archs: Mapping[str, str] | None = None):
    """The model card of a model, or mixnet_custom's for a network of `archs`."""
    return variants.card("mixnet_custom" if name in (archs or {}) else name)


def create(name: str, archs: Mapping[str, str] | None = None, **kwargs):
    """The network `name` (a network of `archs`: mixnet_custom from its file, checked against
    the input size as `lightnets train --arch` checks it)."""
    if name not in (archs or {}):
        return variants.create(name, **kwargs)
    from lightnets.models.arch import read_arch

    arch = read_arch(archs[name])
    return variants.create("mixnet_custom", arch=arch, **kwargs)


def resolve_img_size(
    models: Sequence[str], data: str, img_size: int | None, archs: Mapping[str, str] | None = None
) -> int:
    if img_size is not None:
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
            raise ConfigError(f"--img-size must be a positive integer, got {img_size!r}")
        return img_size
    if data == "digits":
        return 32
    sizes = {card(m, archs).img_size for m in models}
    if len(sizes) > 1:
        raise ConfigError(
            f"the models' cards disagree on the input size ({sorted(sizes)}); pass --img-size"
        )
    return sizes.pop()


def check_img_size(
    models: Sequence[str],
    img_size: int,
    classes: int,
    train_args=(),
    archs: Mapping[str, str] | None = None,
) -> None:
    """Build each model as its trial will (stride-1 stem for images of 64 px or less) and refuse
    one that cannot take `img_size` images, naming it and its smallest input."""
    from lightnets.checkpoints import wants_small_input
    from lightnets.models.arch import check_fits

    small = wants_small_input(img_size, _small_input(train_args))
    for name in models:
        kwargs = {"num_classes": classes, **({"small_input": True} if small else {})}
        try:
            model = create(name, archs, **kwargs)
            if name in (archs or {}):
                check_fits(model.arch, img_size, small)
        except ConfigError as err:
            raise ConfigError(f"{name} cannot be built for {img_size} px images: {err}") from None
        smallest = getattr(model, "min_input", None) or card(name, archs).min_input
        if img_size < smallest:
            raise ConfigError(
                f"{name} cannot take {img_size} px images (min_input {smallest}); "
                "use a larger --img-size or another model"
            )


check_input_size = renamed_function(check_img_size, "check_input_size")


def check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o {out}: not a directory")
    target = out if out.exists() else out.parent
    if not target.is_dir():
        raise FileNotFoundError(f"-o {out}: directory {target} does not exist")
    try:
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as err:
        raise PermissionError(f"-o {out}: cannot write in {target} ({err.strerror})") from None


def default_output(spec: CompareSpec) -> Path:
    """runs/compare-<hash of the settings>: the same command finds the same directory."""
    key = json.dumps([spec.models, spec.seeds, [getattr(spec, k) for k in CompareSpec.SAME]])
    return Path("runs") / f"compare-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
