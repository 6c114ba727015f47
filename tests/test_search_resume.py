"""Why a resumed search ends the same (docs/search.md, "Resume"): epoch reports in trial order, a
trial the scheduler stopped counting its first epochs, the Tune Searcher on fake results (no Tune
run), a whole search interrupted and resumed (fake Tune), a finished one handed back again
without Ray; slow (`-m slow`, needs ray): a real search SIGKILLed mid-way that resumes and ends
with the same candidates and front.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _search_helpers import BUDGET, SPACE24, FakeTune, fake_ms, run_search
from test_compare import needs_ray

from lightnets.compare.epochs import (
    EpochReports,
    mark_stopped,
    read_progress,
    stopped_epoch,
    write_progress,
)
from lightnets.search.evolution import RegularizedEvolution
from lightnets.search.trials import trial_result

# ------------------------------------------------------------------------------ epoch reports


def test_epoch_reports_wait_for_earlier_trials(tmp_path):
    progress, reported = tmp_path / "progress", []
    rows = [{"val_acc": 50.0 + e} for e in range(3)]
    lock = threading.Lock()

    def report_as(trial):
        def report(result):
            with lock:
                reported.append((trial, result["epoch"], result["objective"]))

        return report

    early = EpochReports("c0000", tmp_path / "c0000", progress, (), report_as("c0000"), 3)
    late = EpochReports(
        "c0001", tmp_path / "c0001", progress, ("c0000",), report_as("c0001"), 3, acc_factor=0.5
    )
    thread = threading.Thread(target=late.finish, args=(rows,))
    thread.start()
    time.sleep(0.5)
    assert reported == []  # c0001 waits for c0000's first epoch
    early(rows)  # the last epoch is held back until the train command has exited
    time.sleep(0.5)
    assert reported[:2] == [("c0000", 1, 50.0), ("c0000", 2, 51.0)]
    assert [r[:2] for r in reported[2:]] == [("c0001", 1), ("c0001", 2)]
    early.finish(rows)  # c0000 reports its last epoch and no more: c0001 goes on
    thread.join(timeout=5)
    assert reported[-2:] == [("c0000", 3, 52.0), ("c0001", 3, 26.0)]
    assert read_progress(progress, "c0001") == {"reported": 3, "done": True}


def test_a_trial_that_reports_nothing_more_frees_those_after_it(tmp_path):
    progress, reported = tmp_path / "progress", []
    late = EpochReports("c0001", tmp_path, progress, ("c0000",), reported.append, 3)
    write_progress(progress, "c0000", 1, done=True)  # stopped by the scheduler after epoch 1
    late.finish([{"val_acc": 1.0}] * 3)
    assert [r["epoch"] for r in reported] == [1, 2, 3]
    mark_stopped(tmp_path, 1)
    assert stopped_epoch(tmp_path) == 1


def test_a_stopped_trial_counts_its_first_epochs(tmp_path):
    from test_compare import fake_train

    fake_train(tmp_path / "t", "mixnet_custom", 0, epochs=4, done=3)
    assert trial_result(tmp_path / "t", 4)["status"] == "unfinished"
    (tmp_path / "t" / "stopped.json").write_text('{"epoch": 2}')
    assert trial_result(tmp_path / "t", 4) == {"status": "stopped", "acc": 60.0, "epochs": 2}


# ------------------------------------------------------------------------------ the Tune searcher


@needs_ray
def test_the_tune_searcher_asks_the_proposer_and_hands_back_results(tmp_path, data):
    from ray.tune.search import Searcher

    from lightnets.compare.sweep import _searcher
    from lightnets.search.searching import make_spec
    from lightnets.search.trials import SearchTrials

    spec, _ = make_spec(
        str(data), tmp_path / "out", img_size=24, target="eager", images_per_class=None,
        train_args=(), cpus_per_trial=1, max_concurrent=2, grace_epochs=None,
        latency_ms=BUDGET, threads=1, epochs=2, trials=3, seed=0, population=1,
        sample_size=1, objective="accuracy", mnas_w=-0.07, early_stop=True,
        deterministic=True, seeds=1, reduction_factor=2,
    )  # fmt: skip
    evo = RegularizedEvolution(fake_ms, BUDGET, population=1, sample_size=1, lag=2, space=SPACE24)
    proposer = SearchTrials(spec, tmp_path / "out", evo, str(data), (), tmp_path / "p")
    searcher = _searcher(proposer)
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert (first["id"], second["id"]) == ("c0000", "c0001")
    assert second["report"]["after"] == ["c0000"] and "--arch" in first["plan"]["fresh_argv"]
    searcher.on_trial_complete("t2", {"epoch": 2, "objective": 70.0})
    assert searcher.suggest("t3") is None  # c0002 mutates c0000's population: waits for it
    searcher.on_trial_complete("t1", {"epoch": 1, "objective": 60.0})  # stopped after epoch 1
    assert stopped_epoch(tmp_path / "out" / "trials" / "c0000") == 1
    assert read_progress(tmp_path / "p", "c0000")["done"]
    third = searcher.suggest("t3")
    assert third["id"] == "c0002" and evo.candidates[2].parent == 0
    assert searcher.suggest("t4") == Searcher.FINISHED


# ------------------------------------------------------------------------------ whole searches


def test_an_interrupted_search_resumes_to_the_same_candidates_and_front(
    tmp_path, data, fake_measure
):
    whole = run_search(tmp_path / "whole", FakeTune(order_seed=0))
    with pytest.raises(KeyboardInterrupt):
        run_search(tmp_path / "cut", FakeTune(order_seed=1, interrupt_after=5))
    rest = FakeTune(order_seed=2)
    resumed = run_search(tmp_path / "cut", rest)
    assert len(rest.trained) == 3  # the 5 trained before the interruption are replayed

    def history(result):
        return [(r["id"], r["acc"], r["parent"], r["predicted_ms"]) for r in result["candidates"]]

    assert history(resumed) == history(whole)
    assert [r["id"] for r in resumed["front"]] == [r["id"] for r in whole["front"]]
    assert resumed["best"]["id"] == whole["best"]["id"]
    for i in range(8):
        name = f"candidates/c{i:04d}.toml"
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text()

    more = FakeTune(order_seed=3)
    longer = run_search(tmp_path / "cut", more, trials=10)  # more trials: the search goes on
    assert len(more.trained) == 2 and history(longer)[:8] == history(whole)


def test_a_finished_search_is_handed_back_again_without_ray(
    tmp_path, data, fake_measure, monkeypatch
):
    out = tmp_path / "out"
    first = run_search(out, FakeTune(order_seed=4))
    (out / "front.json").unlink()
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    again = run_search(out, None)
    assert again["candidates"] == first["candidates"] and again["best"] == first["best"]


# ------------------------------------------------------------------------------ slow, on Ray


KILLED_SEARCH = """
import sys
sys.path.insert(0, {tests!r})
from _search_helpers import FakePredictor
from lightnets.search import handback
from lightnets.search.searching import search

handback.measure_latencies = lambda makers, *args, **kwargs: dict.fromkeys(makers, 2.0)
# seed 1: candidates of which ASHA stops two (seed 0's all run to the end), so that the resumed
# search must replay the scheduler's stops too
search({data!r}, target="eager", latency_ms=5.0, trials=5, output=sys.argv[1], img_size=24,
       epochs=3, population=2, sample_size=2, max_concurrent=2, grace_epochs=1, seed=1,
       objective="mnas", mnas_w=-1.0, train_args=["--batch-size", "8"], closing_compare=False,
       predictor=FakePredictor())
"""


@pytest.mark.slow
@needs_ray
def test_a_sigkilled_search_resumes_to_the_same_front(learnable, tmp_path):
    script = tmp_path / "search.py"
    script.write_text(KILLED_SEARCH.format(tests=str(Path(__file__).parent), data=str(learnable)))
    env = {**os.environ, "RAY_memory_monitor_refresh_ms": "0"}
    command = [sys.executable, str(script)]
    subprocess.run([*command, str(tmp_path / "whole")], env=env, check=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, str(killed)], env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once two trials are over and a third runs
        over = [
            d
            for d in (killed / "trials").glob("c*")
            if trial_result(d, 3)["status"] != "unfinished"
        ]
        if len(over) >= 2 and list((killed / "trials").glob(".c000[2-4].pid")):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "front.json").exists()
    subprocess.run([*command, str(killed)], env=env, check=True, timeout=600)

    def history(out):
        saved = json.loads((out / "front.json").read_text())
        rows = [
            (r["id"], r["status"], r["epochs"], r["acc"], r["parent"]) for r in saved["candidates"]
        ]
        return rows, [r["id"] for r in saved["front"]], saved["best"]["id"]

    assert history(killed) == history(tmp_path / "whole")
    logs = [log.read_text().count("=== ") for log in (killed / "logs").glob("*.log")]
    assert 2 in logs  # the trial running at the kill was resumed from its checkpoint
    assert "stopped" in [row[1] for row in history(killed)[0]]  # and ASHA stopped some
