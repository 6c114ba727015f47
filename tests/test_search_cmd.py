"""lightnets.search's search (parts 3-4 of issue 20) and the `search` command.

Fast tests: the space's fit to an input size, regularized evolution on fake scores (within the
budget, the tournament winner mutated, the oldest aged out, proposals that do not depend on the
order results arrive), the Pareto front against a brute-force reference, the epoch reports'
order, the Tune Searcher on fake results (no Tune run), whole searches with a fake predictor and
a fake trial runner in place of Ray (files, best.toml, resume after an interruption), and bad
input at the CLI (one line, exit 2, nothing written). Slow tests (`-m slow`, need ray): a real
tiny search on Ray with its closing comparison, and a search SIGKILLed mid-way that resumes and
ends with the same candidates and front.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_commands import one_line_error
from test_compare import image_folder, needs_ray

from lightnets.cli import main as cli_main
from lightnets.compare.epochs import EpochReports, read_progress, stopped_epoch
from lightnets.errors import ConfigError
from lightnets.models.arch import read_arch
from lightnets.search import front as front_mod
from lightnets.search import space
from lightnets.search.evolution import RegularizedEvolution
from lightnets.search.spec import read_spec
from lightnets.search.trials import trial_result

SPACE24 = space.fit_space(24)


def fake_ms(table) -> float:
    """A latency that grows with every field the way the real one does."""
    cost = sum(
        r.n * r.out * r.e * (1 + sum(r.k) / 10) * (1.2 if r.act == "swish" else 1) * (1 + r.se)
        for r in table
    )
    return 1 + cost / 5000


def fake_acc(table) -> float:
    return round(40 + sum(r.n * r.out * r.e for r in table) / 100 + sum(len(r.k) for r in table), 4)


class FakePredictor:
    def predict(self, table):
        return fake_ms(table)


BUDGET = 5.0  # fake ms: smallest 1.6, largest 13


# ------------------------------------------------------------------------------ the space


def test_fit_space_keeps_kernels_that_fit_the_maps():
    fitted = space.fit_space(32)  # stride-1 stem: maps 32, 16, 16, 8, 8, 4 x4, 2, 2
    assert [max(max(k) for k in row.k) for row in fitted] == [11] * 5 + [7] * 4 + [3] * 2
    assert space.contains(space.smallest(fitted))
    table = space.sample(random.Random(0), fitted)
    from lightnets.models.arch import check_fits
    from lightnets.search.trials import architecture

    check_fits(architecture(table), 32, small_input=True)  # as lightnets train --arch checks it
    with pytest.raises(ConfigError, match="at least 17 px"):
        space.fit_space(16)


def test_cheapen_moves_one_field_to_a_cheaper_option():
    rng = random.Random(0)
    table = space.largest(SPACE24)
    steps = 0
    while table is not None:
        cheaper = space.cheapen(table, rng, SPACE24)
        if cheaper is not None:
            assert len(space.differences(table, cheaper)) == 1 and fake_ms(cheaper) < fake_ms(table)
        table, steps = cheaper, steps + 1
    assert steps > 20


# ------------------------------------------------------------------------------ evolution


def evolution(**kwargs) -> RegularizedEvolution:
    options = dict(seed=0, population=4, sample_size=2, lag=1, space=SPACE24)
    return RegularizedEvolution(fake_ms, BUDGET, **{**options, **kwargs})


def run_evolution(evo: RegularizedEvolution, n: int, score=lambda c: fake_acc(c.table)):
    for _ in range(n):
        c = evo.propose()
        evo.record(c.index, score(c))
    return evo.candidates


def test_proposals_stay_within_the_budget_and_are_new():
    candidates = run_evolution(evolution(), 30)
    assert all(fake_ms(c.table) <= BUDGET and c.predicted_ms == fake_ms(c.table) for c in candidates)
    assert len({c.table for c in candidates}) == 30
    assert all(space.contains(c.table, SPACE24) for c in candidates)
    assert [c.parent is None for c in candidates] == [True] * 4 + [False] * 26


def test_evolution_mutates_the_tournament_winner_and_ages_out_the_oldest():
    evo = evolution(population=3, sample_size=3)  # the tournament sees the whole population
    scores = {0: 90.0, 1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0}  # 0 is best but oldest
    for i in range(6):
        c = evo.propose()
        assert c.index == i
        if i >= 3:
            # the population: the 3 most recent scored candidates
            assert list(c.population) == [i - 3, i - 2, i - 1]
            assert c.parent == max(c.population, key=lambda j: scores[j])
            assert len(space.differences(evo.candidates[c.parent].table, c.table)) == 1
        evo.record(i, scores.get(i, 0.0))
    parents = [c.parent for c in evo.candidates]
    assert parents[3] == 0  # the best while it lives
    assert parents[4] == 3 and parents[5] == 4  # 0 aged out: the best of the younger ones


def test_a_tournament_draws_sample_size_members():
    evo = evolution(population=6, sample_size=2)
    run_evolution(evo, 12)
    for c in evo.candidates[6:]:
        assert len(c.population) == 6 and c.parent in c.population


def test_with_a_lag_proposals_wait_and_ignore_results_that_may_arrive_in_any_order():
    def scores_arrive(order_seed: int):
        """Two trials at a time, finishing in a random order."""
        evo, running, rng = evolution(lag=2), [], random.Random(order_seed)
        while len(evo.candidates) < 14:
            c = evo.propose()
            if c is None:  # waiting for the older of the running trials
                assert len(running) == 2
                done = running.pop(rng.randrange(len(running)))
                evo.record(done.index, fake_acc(done.table))
                continue
            running.append(c)
            if len(running) == 2:
                done = running.pop(rng.randrange(2))
                evo.record(done.index, fake_acc(done.table))
        return [(c.table, c.parent) for c in evo.candidates]

    first = scores_arrive(0)
    assert all(scores_arrive(seed) == first for seed in (1, 2, 3))
    assert any(parent is not None for _, parent in first)


def test_a_budget_with_no_room_gives_up_with_a_clear_error():
    evo = RegularizedEvolution(
        fake_ms, fake_ms(space.smallest(SPACE24)), population=2, space=SPACE24, max_tries=20
    )
    assert evo.propose().table == space.smallest(SPACE24)
    with pytest.raises(ConfigError, match="raise --latency-ms"):
        evo.propose()


# ------------------------------------------------------------------------------ the front


def brute_force_front(points):
    return [p for p in points if not any(front_mod.dominates(q, p) for q in points)]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    points = [
        {"id": i, "latency_ms": rng.randint(1, 8), "acc": rng.randint(50, 60)} for i in range(40)
    ]  # small integers: many ties
    front = front_mod.pareto_front(points)
    assert sorted(p["id"] for p in front) == sorted(p["id"] for p in brute_force_front(points))
    assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)


def test_measuring_only_some_candidates_never_misses_the_front():
    rng = random.Random(0)
    points = [
        {"id": i, "predicted_ms": rng.uniform(1, 10), "acc": rng.uniform(50, 70)} for i in range(30)
    ]
    kept = {p["id"] for p in front_mod.to_measure(points)}
    assert len(kept) < len(points)
    for _ in range(200):  # measurements anywhere within the allowed error of the predictions
        for p in points:
            p["latency_ms"] = p["predicted_ms"] * rng.uniform(0.75, 1.25)
        assert {p["id"] for p in front_mod.pareto_front(points)} <= kept


def test_best_is_the_highest_objective_measured_within_the_budget():
    points = [
        {"id": "a", "latency_ms": 4.0, "objective": 70.0},
        {"id": "b", "latency_ms": 6.0, "objective": 80.0},  # over the budget
        {"id": "c", "latency_ms": 3.0, "objective": 70.0},  # ties with a, faster
        {"id": "d", "latency_ms": None, "objective": 90.0},  # not measured
    ]
    assert front_mod.choose_best(points, 5.0)["id"] == "c"
    assert front_mod.choose_best(points, 2.0) is None


# ------------------------------------------------------------------------------ epoch reports


def test_epoch_reports_wait_for_earlier_trials_and_record_a_stop(tmp_path):
    progress, reported = tmp_path / "progress", []
    rows = [{"val_acc": 50.0 + e} for e in range(3)]
    lock = threading.Lock()

    def report_as(trial):
        def report(result):
            with lock:
                reported.append((trial, result["epoch"]))

        return report

    early = EpochReports("c0000", tmp_path / "c0000", progress, (), report_as("c0000"))
    late = EpochReports(
        "c0001", tmp_path / "c0001", progress, ("c0000",), report_as("c0001"), acc_factor=0.5
    )
    thread = threading.Thread(target=late, args=(rows,))
    thread.start()
    time.sleep(0.5)
    assert reported == []  # c0001 waits for c0000's first epoch
    early(rows[:2])
    time.sleep(0.5)
    assert reported[:2] == [("c0000", 1), ("c0000", 2)] and ("c0001", 3) not in reported
    early.finish()  # c0000 reports no more: c0001 goes on
    thread.join(timeout=5)
    assert reported[-1] == ("c0001", 3)
    assert read_progress(progress, "c0001") == {"reported": 3, "done": False}

    (tmp_path / "c0002").mkdir()
    stopped = EpochReports("c0002", tmp_path / "c0002", progress, (), lambda r: None)
    stopped(rows[:2])
    stopped.stop()
    assert stopped_epoch(tmp_path / "c0002") == 2 and read_progress(progress, "c0002")["done"]


def test_a_stopped_trial_counts_its_first_epochs(tmp_path):
    from test_compare import fake_train

    fake_train(tmp_path / "t", "mixnet_custom", 0, epochs=4, done=3)
    assert trial_result(tmp_path / "t", 4)["status"] == "unfinished"
    (tmp_path / "t" / "stopped.json").write_text('{"epoch": 2}')
    assert trial_result(tmp_path / "t", 4) == {"status": "stopped", "acc": 60.0, "epochs": 2}
