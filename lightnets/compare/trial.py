"""`python -m lightnets.compare.trial TRAIN_FLAGS...`: the old name of a compare trial's process,
kept for the 0.1 series. A trial is now `python -m lightnets train TRAIN_FLAGS...` with
LIGHTNETS_TRIAL_PARENT set (lightnets.compare.trials.enter_trial); this replaces itself with
that process (same pid, same open lock file), importing nothing of lightnets.
"""

import os
import sys

if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, "-m", "lightnets", "train", *sys.argv[1:]])
