"""What makes two runs of `lightnets compare` the same comparison, stored as OUT/compare.json.

Every trial of a results directory must have trained under the same settings (data, image size,
budget, recipe, training flags), or its numbers could not stand in one table. A re-run with the
same settings reuses and resumes trials; one with different settings is refused before anything
is written. The models and seeds may change between runs: each trial is keyed by its model and
seed, and the table shows the models and seeds of the current command.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from lightnets.errors import ConfigError
from lightnets.files import write_text

SPEC_FILE = "compare.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CompareSpec:
    """One comparison: every model x seed trained by `lightnets train` with the same settings."""

    models: tuple[str, ...]
    seeds: tuple[int, ...]
    data: str  # absolute path, or "digits"
    img_size: int
    epochs: int | None = None  # None: the recipe's or lightnets train's default
    recipe: str | None = None
    train_args: tuple[str, ...] = ()  # further `lightnets train` flags, as given
    images_per_class: int | None = None  # train on a symlinked subset of the image folder
    deterministic: bool = True  # --deterministic: a resumed trial is bit-identical on CPU
    study: str | None = None  # "NAME@SCALE" for `lightnets study`

    # what has to match for trials to share a table; models and seeds select trials
    SAME = (
        "data",
        "img_size",
        "epochs",
        "recipe",
        "train_args",
        "images_per_class",
        "deterministic",
        "study",
    )

    def to_dict(self) -> dict:
        return {"version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> CompareSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields
        }
        return cls(**kwargs)


def spec_path(out: str | Path) -> Path:
    return Path(out) / SPEC_FILE


def read_spec(out: str | Path) -> CompareSpec | None:
    return load_spec(spec_path(out), CompareSpec, "compare")


def check_same(out: str | Path, spec: CompareSpec) -> None:
    """Refuse a results directory made by a different comparison (ConfigError naming the first
    settings that differ); a directory with trials but no spec is refused too."""
    why = "its trials cannot share a table with these"
    refuse_unless_same(out, read_spec(out), spec, SPEC_FILE, "a different comparison", why)


# shared by every command whose OUT holds a spec and trials (compare, search)


def load_spec(path: Path, cls, kind: str):
    """`cls.from_dict` of the JSON at `path`; None when there is none, ConfigError when it is
    no `kind` spec."""
    if not path.is_file():
        return None
    try:
        return cls.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: not a lightnets {kind} spec ({err})") from None


def refuse_unless_same(out: str | Path, saved, spec, spec_file: str, what: str, why: str) -> None:
    """ConfigError when OUT's `saved` spec differs from `spec` in a field of `type(spec).SAME`
    (naming the first three), or when OUT holds trials but no spec."""
    out = Path(out)
    if saved is None:
        if (out / "trials").is_dir() and any((out / "trials").iterdir()):
            raise ConfigError(f"-o {out}: holds trials but no {spec_file}; choose another -o")
        return
    differ = [k for k in type(spec).SAME if getattr(saved, k) != getattr(spec, k)]
    if differ:
        shown = "; ".join(
            f"{k} {getattr(saved, k)!r} there, {getattr(spec, k)!r} now" for k in differ[:3]
        )
        raise ConfigError(f"-o {out} holds {what} ({shown}); {why}: choose another -o")


def write_spec(out: str | Path, spec: CompareSpec) -> None:
    write_text(spec_path(out), json.dumps(spec.to_dict(), indent=1))
