"""One flag vocabulary for every command: `--checkpoint`, `--img-size`, `--format`, `-o/--output`,
`--device`, the trials' placement on Ray (`compare`, `study`, `search`), and argparse types that
reject nonsense with a one-line usage error (exit status 2).

The old spellings in OLD_FLAGS still parse until lightnets._deprecation.REMOVED_IN (0.2.0): hidden
from --help, each prints a one-line deprecation note and sets the new flag.
"""

from __future__ import annotations

import argparse
import sys

from lightnets._deprecation import deprecation_note

FORMATS = ("table", "markdown", "json", "csv")

# old spelling -> the flag that replaced it; every one goes in lightnets._deprecation.REMOVED_IN
OLD_FLAGS = {
    "--resolution": "--img-size",
    "--input-size": "--img-size",
    "--json": "--format json",
    "--out": "--output",
    "--out-dir": "--output",
    "--format onnx|torchscript": "--runtime",  # lightnets export's, before --format meant tables
}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def note_deprecated(prog: str, old: str, new: str) -> None:
    """The one-line note an old spelling prints on stderr."""
    print(f"{prog}: note: {deprecation_note(old, new)}", file=sys.stderr)


class _Deprecated(argparse.Action):
    """A hidden old spelling of OLD_FLAGS: a note on stderr, then store into the new flag's dest."""

    def __init__(self, option_strings, dest, const_value=None, **kwargs):
        self.const_value = const_value
        if const_value is not None:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        note_deprecated(parser.prog, option_string, OLD_FLAGS[option_string])
        setattr(namespace, self.dest, self.const_value if self.const_value is not None else values)


def _aliases(parser, dest: str, old: tuple[str, ...], **kwargs) -> None:
    for flag in old:
        parser.add_argument(flag, dest=dest, action=_Deprecated, **kwargs)


def add_img_size(
    parser, help: str = "input side in pixels (default: the checkpoint's, else the model card's)"
):
    parser.add_argument("--img-size", type=positive_int, default=None, help=help)
    _aliases(parser, "img_size", ("--resolution", "--input-size"), type=positive_int)


def add_format(parser, choices: tuple[str, ...] = FORMATS, default: str = "table"):
    parser.add_argument(
        "--format", choices=choices, default=default, help=f"output format (default {default})"
    )
    _aliases(parser, "format", ("--json",), const_value="json")


def add_output(parser, required: bool = False, help: str = "file to write", old=()):
    """-o/--output; when old spellings exist, `parse_args` checks `required` (argparse cannot)."""
    parser.add_argument("-o", "--output", required=required and not old, help=help)
    _aliases(parser, "output", tuple(old))
    if required and old:
        parser.set_defaults(_required_output=True)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """parser.parse_args, plus the required-flag check that aliases put off."""
    args = parser.parse_args(argv)
    if getattr(args, "_required_output", False) and args.output is None:
        parser.error("the following arguments are required: -o/--output")
    return args


def add_checkpoint(
    parser,
    required: bool = False,
    help: str = "run dir, checkpoint dir (best/, last/) or weights file (.safetensors, .pth)",
):
    parser.add_argument("--checkpoint", required=required, help=help)


def model_or_run(model: str | None, checkpoint: str | None) -> tuple[str | None, str | None]:
    """(checkpoint, model name): a run dir or weights file given in place of MODEL is the
    checkpoint, and the model is the one it records."""
    from pathlib import Path

    if model is not None and checkpoint is None and Path(model).exists():
        return model, None
    return checkpoint, model


def device_name(text: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    return text


def add_device(parser, default: str = "auto"):
    parser.add_argument(
        "--device",
        type=device_name,
        default=default,
        help=f"cpu, cuda, cuda:N or auto (default {default})",
    )


def add_arch(parser):
    parser.add_argument(
        "--arch",
        metavar="FILE",
        help="architecture file (.toml/.json) of a MixNet-style network: builds mixnet_custom "
        "(`lightnets arch mixnet_s` prints one to start from)",
    )


def model_for_arch(name: str | None, arch: str | None, flag: str = "--model") -> str | None:
    """The model name with `--arch FILE`: mixnet_custom when none is named; a ConfigError when
    another model is."""
    if arch is None:
        return name
    if name is None:
        return "mixnet_custom"
    from lightnets.errors import ConfigError
    from lightnets.registry import resolve_name

    if resolve_name(name) != "mixnet_custom":
        raise ConfigError(f"--arch builds mixnet_custom; it cannot be combined with {flag} {name}")
    return name


def add_images_per_class(parser):
    parser.add_argument(
        "--images-per-class",
        type=positive_int,
        help="train on at most N images per class and split (symlinks in OUT/data)",
    )


def add_placement(parser):
    """Where the trials of `compare`, `study` and `search` run: lightnets.compare.placement."""
    parser.add_argument(
        "--address",
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: a local cluster here)",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=positive_float,
        default=1.0,
        help="CPUs Ray reserves per trial, also its torch threads (default 1)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        help="GPUs per trial (default 0: trials train on the CPU)",
    )
    parser.add_argument(
        "--workers",
        type=nonnegative_int,
        default=0,
        help="data-loader processes per trial (default 0)",
    )
    parser.add_argument(
        "--max-failures",
        type=nonnegative_int,
        default=2,
        help="retries of a trial whose process or node dies (default 2); it resumes",
    )
