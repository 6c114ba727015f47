"""`TrainConfig`: the single source of truth for a training run.

Every field becomes a command-line flag (`batch_size` -> `--batch-size`), every recipe key must be a
field, and the whole config is saved in the run directory and in every checkpoint. Values are
layered: field defaults < dataset preset (data.py) < recipe file < explicit flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from lightnets import rundir
from lightnets.errors import ConfigError, MissingDependencyError, UnknownNameError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"

OPTIMIZERS = ("sgd", "rmsprop", "rmsproptf", "adamw", "adam")
SCHEDULES = ("cosine", "step", "constant")
AUGMENTS = ("none", "autoaugment", "randaugment")
AMP = ("auto", "none", "bf16", "fp16")
DATASETS = ("auto", "folder", "cifar10", "cifar100", "digits")
TRAIN_CROPS = ("auto", "resize", "pad")

# flags that may differ from the saved config when resuming; anything else would change the run
RESUME_OVERRIDES = frozenset(
    {
        "epochs",
        "workers",
        "progress",
        "checkpoint_every",
        "resume",
        "device",
        "tensorboard",
        "stop_at_epoch",
        "threads",
    }
)


def _f(default, help: str, **meta):
    """A field with its flag help (and optional `choices`) in the metadata."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """All settings of a training run; see `lightnets train --help` for each field."""

    # --- data
    data: str = _f("digits", "image folder (root/train/<class>/..), CIFAR dir, or 'digits'")
    dataset: str = _f("auto", "data format; auto detects it from the path", choices=DATASETS)
    img_size: int | None = _f(None, "training/eval image side (default: model card, 32 for digits)")
    in_chans: int = _f(3, "input channels: 3 (RGB) or 1 (grayscale)", choices=(1, 3))
    crop_pct: float | None = _f(None, "eval resize = img_size / crop_pct (default: model card)")
    val_split: float = _f(0.2, "share of train held out when the data has no val split")
    train_crop: str = _f(
        "auto",
        "training crop: resize (RandomResizedCrop over --scale), pad (pad by img_size/8, random "
        "crop: keeps the whole object of a small image), auto (pad for images <= 64 px)",
        choices=TRAIN_CROPS,
    )
    scale: tuple[float, float] | None = _f(
        None, "RandomResizedCrop area range (default: 0.08 1.0, ImageNet's)"
    )
    hflip: float = _f(0.5, "horizontal flip probability")
    color_jitter: float = _f(0.0, "brightness/contrast/saturation jitter strength (0: off)")
    augment: str = _f("none", "policy augmentation", choices=AUGMENTS)
    randaugment_n: int = _f(2, "RandAugment: ops per image")
    randaugment_m: int = _f(9, "RandAugment: magnitude 0..10")
    mixup: float = _f(0.0, "mixup alpha (0: off)")
    cutmix: float = _f(0.0, "cutmix alpha (0: off); with mixup, one of them per batch")
    workers: int | None = _f(
        None, "DataLoader worker processes per rank (default: 0 when images are cached, else 2)"
    )
    cache_images: str = _f(
        "auto",
        "keep the decoded images in memory (auto: when they take under a quarter of the RAM)",
        choices=("auto", "on", "off"),
    )
    strict: bool = _f(False, "fail on the first unreadable image instead of skipping it")
    # --- model
    model: str = _f("mobilenet_v2_w035", "registered model name (`lightnets models`)")
    arch: str | None = _f(
        None, "MixNet-style architecture file (.toml/.json): --model mixnet_custom, table kept"
    )
    num_classes: int | None = _f(None, "classifier outputs (default: classes in the data)")
    pretrained: str | None = _f(None, "initial weights file (lightnets or timm layout)")
    freeze_backbone: bool = _f(False, "train only the classifier (backbone BN kept in eval mode)")
    small_input: bool | None = _f(None, "stride-1 stem for small images (default: img_size <= 64)")
    drop_rate: float | None = _f(None, "dropout before the classifier (default: model's)")
    drop_path_rate: float | None = _f(None, "stochastic depth rate (default: model's)")
    bn_momentum: float | None = _f(None, "BatchNorm momentum, PyTorch convention (TF 0.99 = 0.01)")
    bn_eps: float | None = _f(None, "BatchNorm epsilon")
    sync_bn: bool = _f(False, "SyncBatchNorm across ranks (CUDA only)")
    # --- optimisation
    epochs: int = _f(10, "epochs to train")
    batch_size: int = _f(64, "global batch size (split evenly over ranks)")
    opt: str = _f("sgd", "optimizer (rmsproptf: TensorFlow's RMSProp)", choices=OPTIMIZERS)
    lr: float | None = _f(None, "learning rate (default: lr_base * batch_size / lr_base_size)")
    lr_base: float = _f(0.1, "learning rate per lr_base_size images")
    lr_base_size: int = _f(256, "batch size that lr_base refers to")
    momentum: float = _f(0.9, "SGD/RMSProp momentum")
    rmsprop_decay: float = _f(0.9, "RMSProp decay of the squared-gradient average")
    opt_eps: float | None = _f(None, "optimizer epsilon (default: 1e-3 RMSProp, 1e-8 Adam)")
    weight_decay: float = _f(1e-4, "weight decay")
    decay_all: bool = _f(False, "also decay BN, biases and depthwise weights")
    sched: str = _f("cosine", "learning-rate schedule after warm-up", choices=SCHEDULES)
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 over this many epochs")
    decay_epochs: float = _f(2.4, "step schedule: multiply by decay_rate every this many epochs")
    decay_rate: float = _f(0.97, "step schedule factor")
    min_lr: float = _f(0.0, "cosine schedule floor")
    label_smoothing: float = _f(0.0, "label smoothing")
    ema_decay: float = _f(0.0, "EMA of weights (0: off; TF-style warm-up (1+n)/(10+n))")
    clip_grad: float = _f(0.0, "clip the gradient norm (0: off)")
    # --- runtime
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    amp: str = _f("none", "mixed precision (auto: bf16 on CPU, fp16 on CUDA)", choices=AMP)
    channels_last: bool | None = _f(None, "channels_last memory format (default: on for CPU)")
    compile: bool = _f(False, "torch.compile the model")
    threads: int = _f(0, "CPU threads per process (0: this process's share of cores minus workers)")
    deterministic: bool = _f(False, "deterministic algorithms (bit-exact resume on CPU)")
    seed: int = _f(0, "seed of weights, data order and augmentation")
    run_dir: str | None = _f(None, "output directory (default: runs/<model>-<data>-<time>)")
    resume: str | None = _f(None, "continue the run in this directory from its last checkpoint")
    checkpoint_every: int = _f(0, "also checkpoint every N steps (bounds loss on SIGKILL)")
    eval_every: int = _f(1, "evaluate every N epochs (and after the last)")
    stop_at_epoch: int = _f(0, "end this invocation after epoch N, checkpointed (time-sliced jobs)")
    progress: bool = _f(True, "tqdm progress bar")
    tensorboard: bool = _f(False, "also log to TensorBoard (needs the tensorboard package)")
    recipe: str | None = _f(None, "recipe name (mixnet, finetune) or a .toml/.yaml/.json file")

    def __post_init__(self):
        positive = ("epochs", "batch_size", "lr_base_size", "randaugment_n", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be >= 1, got {getattr(self, name)!r}")
        for name in (
            "threads",
            "stop_at_epoch",
            "workers",
            "checkpoint_every",
            "weight_decay",
            "mixup",
            "cutmix",
            "warmup_epochs",
            "min_lr",
            "clip_grad",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:  # None: chosen later (workers)
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {value!r}")
        for name in ("label_smoothing", "ema_decay", "momentum", "rmsprop_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"--{_flag(name)} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ConfigError(f"--hflip must be in [0, 1], got {self.hflip!r}")
        if not 0.0 < self.val_split < 1.0:
            raise ConfigError(f"--val-split must be in (0, 1), got {self.val_split!r}")
        lo, hi = self.scale or (0.08, 1.0)
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"--scale must satisfy 0 < min <= max <= 1, got {self.scale!r}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr!r}")
        if self.crop_pct is not None and not 0.0 < self.crop_pct <= 1.0:
            raise ConfigError(f"--crop-pct must be in (0, 1], got {self.crop_pct!r}")
        if self.decay_epochs <= 0 or not 0.0 < self.decay_rate <= 1.0:
            raise ConfigError("--decay-epochs must be > 0 and --decay-rate in (0, 1]")
        if not 0 <= self.randaugment_m <= 10:
            raise ConfigError(f"--randaugment-m must be in 0..10, got {self.randaugment_m!r}")
        if self.arch is not None and self.model != "mixnet_custom":
            raise ConfigError(f"--arch builds mixnet_custom; it cannot train --model {self.model}")
        for name, meta in _fields().items():
            choices = meta.metadata.get("choices")
            if choices and getattr(self, name) not in choices:
                raise ConfigError(
                    f"--{_flag(name)} must be one of {', '.join(map(str, choices))}, "
                    f"got {getattr(self, name)!r}"
                )

    @property
    def learning_rate(self) -> float:
        """The peak learning rate: `lr`, or `lr_base` scaled linearly with the batch size."""
        if self.lr is not None:
            return self.lr
        return self.lr_base * self.batch_size / self.lr_base_size

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict, where: str = "config") -> TrainConfig:
        return cls(**_coerce(values, where))


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _base_type(hint) -> type:
    """int for `int | None`, tuple for `tuple[float, float]` and `tuple[float, float] | None`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is not tuple and len(args) == 1:  # X | None
        hint = args[0]
    return tuple if typing.get_origin(hint) is tuple else hint


def _coerce(values: dict, where: str) -> dict:
    """Check names and types of `values` (from a recipe or saved config) against the fields."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in hints:
            close = difflib.get_close_matches(key, hints, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownNameError(f"{where}: unknown key {raw_key!r}{hint}")
        kind = _base_type(hints[key])
        if value is None and type(None) not in typing.get_args(hints[key]):
            raise ConfigError(f"{where}: {key} must be {kind.__name__}, got null")
        if value is None or kind is str and isinstance(value, str):
            out[key] = value
        elif kind is tuple and isinstance(value, (list, tuple)) and len(value) == 2:
            out[key] = (float(value[0]), float(value[1]))
        elif kind is bool and isinstance(value, bool):
            out[key] = value
        elif (
            kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            if kind is int and value != int(value):
                raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
            out[key] = kind(value)
        else:
            raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return out


def load_recipe(name_or_path: str) -> dict:
    """Recipe values: a bundled name (`mixnet`) or a .toml / .yaml / .json file; keys checked."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))
            raise FileNotFoundError(
                f"--recipe {name_or_path!r}: no such recipe; bundled: "
                f"{', '.join(known)} (or pass a .toml/.yaml/.json file)"
            )
    elif not path.is_file():
        raise FileNotFoundError(f"--recipe: file not found: {name_or_path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = _toml().loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise MissingDependencyError(
                    "YAML recipes need PyYAML: pip install pyyaml"
                ) from None
            values = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise ConfigError(f"--recipe {name_or_path}: use a .toml, .yaml or .json file")
    except (ValueError, TypeError) as err:  # parse errors of all three formats
        if "recipe" in str(err):
            raise
        raise ConfigError(f"--recipe {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--recipe {path}: expected a table of settings")
    values.pop("recipe", None)  # a saved config.toml names its recipe; its values are inline
    return _coerce(values, f"recipe {path.name}")


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib
        except ImportError:
            raise MissingDependencyError(
                "TOML recipes need tomli on Python 3.10: pip install tomli"
            ) from None
    return tomllib


def dump_toml(values: dict) -> str:
    """A flat TOML table of scalars and lists (None left out); readable back as a recipe."""

    def literal(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(literal(x) for x in v) + "]"
        if isinstance(v, float):
            return repr(v) if v == v and abs(v) != float("inf") else ("nan" if v != v else "inf")
        return json.dumps(v) if isinstance(v, str) else str(v)

    return "".join(f"{k} = {literal(v)}\n" for k, v in values.items() if v is not None)


def build_parser(prog: str = "lightnets train", description: str | None = None):
    """An argparse parser with one flag per TrainConfig field; unset flags are absent."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, argument_default=argparse.SUPPRESS
    )
    hints = typing.get_type_hints(TrainConfig)
    for name, f in _fields().items():
        kind, default = _base_type(hints[name]), f.default
        if default is dataclasses.MISSING:
            default = f.default_factory()
        help_ = f"{f.metadata['help']} [{default}]".replace("%", "%%")
        flag = f"--{_flag(name)}"
        choices = f.metadata.get("choices")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_)
        elif kind is tuple:
            parser.add_argument(flag, type=float, nargs=2, metavar=("MIN", "MAX"), help=help_)
        else:
            parser.add_argument(flag, type=kind, choices=choices, help=help_)
    return parser


def resolve_config(flags: dict, preset: dict | None = None) -> TrainConfig:
    """defaults < dataset preset < recipe < flags; a recipe error surfaces before any work."""
    values = dict(preset or {})
    recipe = flags.get("recipe")
    if recipe:
        values.update(load_recipe(recipe))
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in flags.items()})
    if values.get("arch") is not None:
        values.setdefault("model", "mixnet_custom")
    return TrainConfig.from_dict(values, "flags")


def _absolute(key: str, value, dataset: str = "auto"):
    """`value` of a path field as an absolute path; names (digits, bundled recipes) unchanged."""
    if value is None:
        return None
    if key == "data" and (dataset == "digits" or (value == "digits" and dataset == "auto")):
        return value
    if key == "recipe" and not Path(value).suffix:
        return value
    return os.path.abspath(os.path.expanduser(value))


PATH_FIELDS = ("data", "arch", "pretrained", "recipe", "run_dir", "resume")


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its file and directory fields absolute: a saved run resumes from any directory."""
    updates = {k: _absolute(k, getattr(cfg, k), cfg.dataset) for k in PATH_FIELDS}
    return dataclasses.replace(cfg, **updates)


def resume_config(run_dir: str | os.PathLike, flags: dict) -> TrainConfig:
    """The saved config of `run_dir`, with only the flags that keep the run the same applied."""
    run_dir = os.path.abspath(os.path.expanduser(run_dir))
    path = Path(run_dir) / rundir.CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"--resume {run_dir}: no config.json (not a lightnets run dir)")
    saved = TrainConfig.from_dict(json.loads(path.read_text()), str(path))

    def given(k, v):  # a flag's value as the saved config stores it
        v = tuple(v) if isinstance(v, list) else v
        return _absolute(k, v, flags.get("dataset", saved.dataset)) if k in PATH_FIELDS else v

    changed = sorted(
        k
        for k, v in flags.items()
        if k not in RESUME_OVERRIDES and given(k, v) != getattr(saved, k)
    )
    if changed:
        raise ConfigError(
            f"--resume: cannot change {', '.join('--' + _flag(k) for k in changed)} "
            f"of an existing run (allowed: epochs, workers, device, progress, "
            f"checkpoint-every)"
        )
    updates = {k: v for k, v in flags.items() if k in RESUME_OVERRIDES}
    updates.update(resume=run_dir, run_dir=run_dir)
    if saved.arch is not None and (Path(run_dir) / rundir.ARCH).is_file():
        updates["arch"] = str(Path(run_dir) / rundir.ARCH)  # the run's copy outlives the file
    return absolute_paths(dataclasses.replace(saved, **updates))
