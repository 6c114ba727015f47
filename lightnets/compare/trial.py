"""`python -m lightnets.compare.trial TRAIN_FLAGS...`: the process of one compare trial.

It is `lightnets train TRAIN_FLAGS...` plus two things: the study networks of
`lightnets.compare.variants` are registered first (so `--model mobilenet_v1_mixk9_exp_w050` and
the resume of such a run work), and on Linux the process gets SIGTERM when the worker that
started it dies (`lightnets train` then checkpoints and exits), so no orphan keeps training; the
trial's lock file, held until this process exits, makes a retry wait for that checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def _die_with_parent() -> None:
    parent = os.environ.get("LIGHTNETS_TRIAL_PARENT")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(128 + signal.SIGTERM)


def _model(argv: list[str]) -> str | None:
    for flag in ("--model", "--resume"):
        if flag in argv[:-1]:
            value = argv[argv.index(flag) + 1]
            if flag == "--model":
                return value
            config = Path(value) / "config.json"
            return json.loads(config.read_text()).get("model") if config.is_file() else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _die_with_parent()
    from lightnets.cli import main as cli_main
    from lightnets.compare.variants import ensure_registered

    model = _model(argv)
    if model:
        ensure_registered(model)
    return cli_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
