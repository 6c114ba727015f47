"""The `lightnets` command: git-style subcommands, each a module with `main(argv) -> int`.

This module only wires them together. Errors a user can fix (unknown model, bad file, missing
optional package) are printed as one line and exit with status 2; anything else is a bug and raises.
"""

from __future__ import annotations

import importlib
import sys

from lightnets import __version__

# name -> (module, one-line help); modules are imported only when their command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "layers": ("lightnets.tools.layers_table", "list the layer library with paper references"),
    "models": ("lightnets.tools.models_table", "list registered models with params, MACs, top-1"),
    "profile": ("lightnets.tools.profile", "params, MACs, memory and latency beside the papers"),
    "train": ("lightnets.train.cli", "train a model on your images (or the built-in digits)"),
    "eval": ("lightnets.train.evaluate", "evaluate a checkpoint on a labelled image folder"),
    "predict": ("lightnets.train.predict", "classify images with a checkpoint"),
    "export": ("lightnets.tools.export", "export to ONNX/TorchScript and verify with a runtime"),
    "inspect": ("lightnets.tools.inspect", "look inside a network: kernels, frequencies, features"),
}

USER_ERRORS = (
    ValueError,
    KeyError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    ImportError,
)


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: lightnets [--version] COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"lightnets {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lightnets: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return module.main(rest)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"lightnets {name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
