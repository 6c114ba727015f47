"""The `lightnets` command: git-style subcommands, each a module of `lightnets.commands` with
`main(argv) -> int`.

This module only dispatches. Mistakes a user can fix (a `lightnets.errors.LightnetsError`: unknown
name, bad value, corrupt checkpoint, missing optional package; or a file that cannot be opened)
print one line and exit with status 2. Anything else is a bug in lightnets and keeps its traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys

from lightnets import __version__
from lightnets.errors import LightnetsError

# name -> one-line help; lightnets.commands.<name> is imported only when its command runs
COMMANDS: dict[str, str] = {
    "layers": "list the layer library with paper references",
    "models": "list registered models with params, MACs, top-1",
    "arch": "print, convert or check a MixNet-style architecture file",
    "profile": "params, MACs, memory and latency beside the papers",
    "train": "train a model on your images (or the built-in digits)",
    "eval": "evaluate a checkpoint on a labelled image folder",
    "predict": "classify images with a checkpoint",
    "export": "export to ONNX/TorchScript and verify with a runtime",
    "deploy": "fastest runtime x precision within an accuracy budget, measured",
    "verify": "re-run an artifact's reference set on this machine's CPU and runtime",
    "inspect": "look inside a network: kernels, frequencies, features",
    "compare": "train models x seeds on your data (Ray Tune) and compare them within noise",
    "study": "run a paper's ablation on your data and judge its claims",
    "search": "design a MixNet within a latency budget on your target and data (Ray Tune)",
}
MODULES = {"eval": "evaluate"}  # `eval` is a builtin name: its module is commands/evaluate.py

# a path the user named that cannot be opened or written: the OSError names it
FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, help_ in COMMANDS.items()]
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
        from difflib import get_close_matches

        close = get_close_matches(name, COMMANDS, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        print(f"lightnets: unknown command {name!r}{hint}\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"lightnets.commands.{MODULES.get(name, name)}")
    try:
        return module.main(rest)
    except (LightnetsError, *FILE_ERRORS) as err:
        print(f"lightnets {name}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside the places that turn it into a clean stop
        print(f"lightnets {name}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _one_line(err: BaseException) -> str:
    text = (
        str(err)
        if not isinstance(err, OSError) or not err.filename
        else (f"{err.filename}: {err.strerror or err}")
    )
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
