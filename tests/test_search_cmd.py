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
from test_compare import image_folder, needs_ray, one_line_error

from lightnets.cli import main as cli_main
from lightnets.compare.epochs import (
    EpochReports,
    mark_stopped,
    read_progress,
    stopped_epoch,
    write_progress,
)
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
    assert all(
        fake_ms(c.table) <= BUDGET and c.predicted_ms == fake_ms(c.table) for c in candidates
    )
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
            if c is None:  # waits for the oldest running trial (a slot may stay idle)
                assert running
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
        fake_ms,
        fake_ms(space.smallest(SPACE24)),
        population=2,
        sample_size=2,
        space=SPACE24,
        max_tries=20,
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


# ------------------------------------------------------------------------------ whole searches


class FakeTune:
    """Stands in for Ray Tune: asks the proposer for trials while fewer than max_concurrent run,
    "trains" each when it finishes (a run dir as `lightnets train` leaves it, the accuracy a
    function of the table) in an order drawn from `order_seed`, and hands the result back.
    A finished run dir is replayed, not trained; `interrupt_after` trainings raise Ctrl-C."""

    def __init__(self, order_seed: int = 0, interrupt_after: int | None = None):
        self.order_seed, self.interrupt_after, self.trained = order_seed, interrupt_after, []

    def __call__(self, proposer, *, max_concurrent, early_stop, **kwargs):
        rng, running = random.Random(self.order_seed), []
        while not proposer.finished or running:
            config = None
            if not proposer.finished and len(running) < max_concurrent:
                config = proposer.next_config()
            if config is not None:
                running.append(config)
                continue
            config = running.pop(rng.randrange(len(running)))
            acc = self.train(config, proposer.spec.epochs)
            result = {"epoch": proposer.spec.epochs, "acc": acc}
            proposer.record(config["id"], {**result, "objective": acc}, False)
        return {}

    def train(self, config, epochs: int) -> float:
        plan = config["plan"]
        run_dir = Path(plan["run_dir"])
        if not (run_dir / "metrics.json").is_file():
            if self.interrupt_after is not None and len(self.trained) >= self.interrupt_after:
                raise KeyboardInterrupt
            argv = plan["fresh_argv"]
            acc = fake_acc(read_arch(argv[argv.index("--arch") + 1]).rows)
            write_run(run_dir, epochs, acc)
            self.trained.append(config["id"])
        return json.loads((run_dir / "metrics.json").read_text())[-1]["val_acc"]


def write_run(run_dir: Path, epochs: int, acc: float) -> None:
    run_dir.mkdir(parents=True)
    config = {"model": "mixnet_custom", "seed": 0, "epochs": epochs, "img_size": 24}
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = [{"epoch": e + 1, "val_acc": acc - (epochs - e - 1)} for e in range(epochs)]
    (run_dir / "metrics.json").write_text(json.dumps(rows))
    (run_dir / "last").mkdir()
    (run_dir / "last" / "state.pt").write_bytes(b"")


@pytest.fixture
def fake_measure(monkeypatch):
    """End-to-end latency: the fake prediction plus 10%."""
    from lightnets.search import handback

    def measure(makers, target, img_size, threads, out, **kwargs):
        return {n: 1.1 * fake_ms(read_arch(out / "candidates" / f"{n}.toml").rows) for n in makers}

    monkeypatch.setattr(handback, "measure_latencies", measure)


def run_search(out, runner, **kwargs):
    from lightnets.search.searching import search

    options = dict(target="eager", latency_ms=BUDGET, trials=8, img_size=24, epochs=2)
    options.update(population=4, sample_size=2, max_concurrent=2, closing_compare=False)
    options.update(kwargs)
    return search(str(DATA), output=out, predictor=FakePredictor(), runner=runner, **options)


DATA = Path(__file__).parent / "fixtures"  # replaced by a real image folder in `data`


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = image_folder(tmp_path / "data", real=False)
    monkeypatch.setattr(sys.modules[__name__], "DATA", folder)
    return folder


def test_a_search_writes_its_front_best_and_candidates(tmp_path, data, fake_measure, capsys):
    from lightnets.commands.search import SearchProgress, print_result

    out = tmp_path / "out"
    result = run_search(out, FakeTune())
    print_result(result, "json", SearchProgress(False))
    printed = json.loads(capsys.readouterr().out)
    assert printed["best"]["id"] == result["best"]["id"] and printed["compare"] is None
    print_result(result, "table", SearchProgress(False))
    assert f"best: {result['best']['id']}, val acc" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "candidates").iterdir()) == [
        f"c{i:04d}.toml" for i in range(8)
    ]
    assert read_spec(out).latency_ms == BUDGET
    saved = json.loads((out / "front.json").read_text())
    assert [r["id"] for r in saved["front"]] == [r["id"] for r in result["front"]]
    assert saved["best"]["id"] == result["best"]["id"] and saved["best"]["latency_ms"] <= BUDGET
    lines = (out / "front.md").read_text().splitlines()
    assert sum(line.startswith("| c0") for line in lines) == len(saved["front"])
    inside = [r for r in saved["candidates"] if r.get("latency_ms", 99) <= BUDGET]
    assert saved["best"]["acc"] == max(r["acc"] for r in inside)

    import lightnets
    from lightnets.profiling import count_params

    best = read_arch(out / "best.toml")
    assert best == read_arch(out / "candidates" / f"{saved['best']['id']}.toml")
    built = lightnets.create_model("mixnet_custom", arch=out / "best.toml", num_classes=2,
                                   small_input=True)  # fmt: skip
    reference = space.build_network(best.rows, img_size=24, num_classes=2)
    assert count_params(built).learned == count_params(reference).learned
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_ctrl_c_while_the_front_is_written_keeps_the_previous_files(
    tmp_path, data, fake_measure, monkeypatch
):
    from lightnets import plotting

    out = tmp_path / "out"
    run_search(out, FakeTune())
    names = ("front.json", "front.md", "front.png", "best.toml")
    before = {name: (out / name).read_bytes() for name in names}

    def interrupted(figure, path):
        raise KeyboardInterrupt  # Ctrl-C while the chart is saved

    monkeypatch.setattr(plotting, "save_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(out, FakeTune(), trials=10)  # two more candidates: another front.json
    assert {name: (out / name).read_bytes() for name in names} == before
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


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


def test_a_different_search_in_the_same_output_is_refused(tmp_path, data, fake_measure):
    out = tmp_path / "out"
    run_search(out, FakeTune(), trials=4)
    before = (out / "search.json").read_text()
    with pytest.raises(ConfigError, match="holds a different search.*latency_ms 5.0 there"):
        run_search(out, FakeTune(), trials=4, latency_ms=4.0)
    assert (out / "search.json").read_text() == before


def test_a_budget_of_a_zoo_model_is_measured_once(tmp_path, data, fake_measure, monkeypatch):
    from lightnets.search import measure

    calls = []

    def measured(makers, target, img_size, threads, out=None, **kwargs):
        calls.append(sorted(makers))
        return dict.fromkeys(makers, BUDGET)

    monkeypatch.setattr(measure, "measure_latencies", measured)
    out = tmp_path / "out"
    options = dict(latency_ms=None, latency_of="mobilenet_v2_w035", trials=4)
    run_search(out, FakeTune(), **options)
    assert calls == [["mobilenet_v2_w035"]]
    saved = read_spec(out)
    assert (saved.latency_of, saved.latency_ms) == ("mobilenet_v2_w035", BUDGET)
    run_search(out, FakeTune(), **options)  # resumed: the saved budget, not measured again
    assert len(calls) == 1
    with pytest.raises(ConfigError, match="latency_of 'mobilenet_v2_w035' there"):
        run_search(out, FakeTune(), **{**options, "latency_of": "mobilenet_v2_w050"})


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


# ------------------------------------------------------------------------------ bad input


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = cli_main(["search", *argv])
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    return code, capsys.readouterr().err


@pytest.fixture
def quick_timer(monkeypatch, tmp_path):
    """Every part and network timed at 1 ms, in a cache of this test's own."""
    from lightnets.search import latency
    from lightnets.search.timing import Timing

    def fake(target, items, threads, **kwargs):
        return {name: Timing(0.25 if name == latency.CALL else 1.0, 1.0, 1) for name, _ in items}

    monkeypatch.setattr(latency, "time_modules", fake)
    monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "cache"))


def search_argv(data, out, *extra, budget="5", trials="3"):
    argv = [str(data), "--target", "eager", "--latency-ms", budget, "--trials", trials]
    return [*argv, "--img-size", "24", "-o", str(out), *extra]


def test_a_budget_below_the_smallest_network_says_what_it_costs(
    capsys, data, tmp_path, quick_timer
):
    out = tmp_path / "out"
    line = one_line_error(*run_cli(capsys, *search_argv(data, out, budget="0.01")))
    assert "--latency-ms 0.01: the smallest network of the search space is predicted at" in line
    assert "ms on eager (24 px, 1 thread)" in line
    assert not out.exists()


def test_unknown_or_missing_targets(capsys, data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    argv = search_argv(data, out)
    argv[argv.index("eager")] = "onnxrutime:int8"
    line = one_line_error(*run_cli(capsys, *argv))
    assert "onnxrutime" in line and "onnxruntime" in line
    from lightnets.deploy import targets

    argv = search_argv(data, out)
    argv[argv.index("--latency-ms") : argv.index("--latency-ms") + 2] = [
        "--latency-of",
        "mixnet_ss",
    ]
    line = one_line_error(*run_cli(capsys, *argv))
    assert "mixnet_ss" in line and "mixnet_s" in line
    argv = search_argv(data, out)
    argv[argv.index("eager")] = "onnxrutime:int8"
    monkeypatch.setattr(targets, "missing_packages", lambda target, to_run=False: ["onnxruntime"])
    argv[argv.index("onnxrutime:int8")] = "onnxruntime:int8"
    line = one_line_error(*run_cli(capsys, *argv))
    assert "needs onnxruntime" in line and "pip install lightnets[" in line
    assert not out.exists()


def test_bad_data_trials_sizes_and_evolution_settings(capsys, data, tmp_path):
    out = tmp_path / "out"
    cases = [
        (search_argv(tmp_path / "nowhere", out), "no such directory"),
        (search_argv(image_folder(tmp_path / "one", ("cat",), real=False), out),
         "at least two classes"),
        (search_argv(data, out, trials="0"), "--trials: expected a positive integer"),
        (search_argv(data, out, "--img-size", "16"), "it needs at least 17 px"),
        (search_argv(data, out, "--population", "2", "--sample-size", "3"),
         "--sample-size 3 is larger than --population 2"),
        (search_argv(data, out, "--mnas-w", "0.5"), "--mnas-w must be <= 0"),
        (search_argv(data, out, "--small-input"), "--small-input is set by search"),
        (search_argv(data, out, "--lr-bas", "0.1"), "unrecognized arguments: --lr-bas"),
        (search_argv(data, out, "--latency-of", "mobilenet_v2"), "not allowed with argument"),
    ]  # fmt: skip
    for argv, expected in cases:
        line = one_line_error(*run_cli(capsys, *argv))
        assert expected in line, line
    assert not out.exists()


def test_another_search_in_the_output_directory_is_one_line(capsys, data, tmp_path):
    from lightnets.search.spec import SearchSpec, write_spec

    out = tmp_path / "out"
    out.mkdir()
    saved = SearchSpec(data=str(data), img_size=24, target="eager", latency_ms=9.0, threads=1,
                       epochs=10, trials=3, max_concurrent=1, grace_epochs=3)  # fmt: skip
    write_spec(out, saved)
    argv = search_argv(data, out, "--max-concurrent", "1")
    line = one_line_error(*run_cli(capsys, *argv))
    assert "holds a different search (latency_ms 9.0 there, 5.0 now)" in line


# ------------------------------------------------------------------------------ compare


def test_compare_trains_a_network_from_its_architecture_file(tmp_path):
    from lightnets.compare.comparison import compare
    from lightnets.models.arch import Architecture, write_arch
    from lightnets.search.trials import architecture

    data = image_folder(tmp_path / "data", real=False)
    arch_file = tmp_path / "mine.toml"
    write_arch(architecture(space.smallest(SPACE24)), arch_file)
    plans = []

    def runner(todo, **kwargs):
        for p in todo:
            plans.append(p)
            argv = p.fresh_argv
            write_run(Path(p.run_dir), 1, 60.0)
            kept = read_arch(argv[argv.index("--arch") + 1])  # as lightnets train keeps it
            write_arch(kept, Path(p.run_dir) / "arch.toml")
            config = json.loads((Path(p.run_dir) / "config.json").read_text())
            config.update(arch=argv[argv.index("--arch") + 1], small_input=True)
            (Path(p.run_dir) / "config.json").write_text(json.dumps(config))
            (Path(p.run_dir) / "classes.json").write_text('["cat", "dog"]')
        return {}

    out = tmp_path / "out"
    kwargs = dict(output=out, epochs=1, img_size=24, latency=False, runner=runner)
    result = compare(["mine"], str(data), archs={"mine": arch_file}, **kwargs)
    assert plans[0].id == "mine-s0" and plans[0].fresh_argv[:2] == ("--model", "mixnet_custom")
    (row,) = result["models"]
    reference = space.build_network(space.smallest(SPACE24), img_size=24, num_classes=2)
    from lightnets.profiling import count_params

    assert row["model"] == "mine" and row["params"] == count_params(reference).learned
    other = Architecture(space.largest(SPACE24), stem=16, head=1536)
    write_arch(other, arch_file)
    with pytest.raises(ConfigError, match="mine-s0 .* trained another architecture"):
        compare(["mine"], str(data), archs={"mine": arch_file}, **kwargs)


# ------------------------------------------------------------------------------ slow, on Ray


@pytest.fixture(scope="module", autouse=True)
def _stop_ray():
    yield
    if "ray" in sys.modules and sys.modules["ray"] is not None:
        sys.modules["ray"].shutdown()


@pytest.fixture
def learnable(tmp_path):
    return image_folder(tmp_path / "learnable", classes=("a", "b", "c"), train=16, val=16)


@pytest.mark.slow
@needs_ray
def test_tiny_search_on_ray_with_its_closing_comparison(
    capsys, learnable, tmp_path, quick_timer, monkeypatch
):
    from lightnets.search import handback

    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")
    monkeypatch.setattr(handback, "zoo_models", lambda: ["mobilenet_v2_w035", "vgnet_g_1_0mp"])
    out = tmp_path / "out"
    flags = ["--epochs", "2", "--population", "2", "--sample-size", "1", "--max-concurrent", "2"]
    argv = search_argv(learnable, out, *flags, "--batch-size", "8", budget="200", trials="3")
    assert cli_main(["search", *argv]) == 0
    captured = capsys.readouterr()
    assert "propose c0002" in captured.err and "closing comparison: searched_c" in captured.err
    assert "best: c000" in captured.out and "closing comparison (" in captured.out
    result = json.loads((out / "front.json").read_text())
    assert result["best"] is not None and len(result["candidates"]) == 3
    compared = json.loads((out / "compare" / "results.json").read_text())
    names = [row["model"] for row in compared["models"]]
    assert names[0] == f"searched_{result['best']['id']}" and len(names) >= 2
    assert all(row["seeds"] == 1 for row in compared["models"])
    kept = read_arch(out / "compare" / "trials" / f"{names[0]}-s0" / "arch.toml")
    assert kept == read_arch(out / "best.toml")


KILLED_SEARCH = """
import sys
sys.path.insert(0, {tests!r})
from test_search_cmd import FakePredictor
from lightnets.search import handback
from lightnets.search.searching import search

handback.measure_latencies = lambda makers, *args, **kwargs: dict.fromkeys(makers, 2.0)
search({data!r}, target="eager", latency_ms=5.0, trials=5, output=sys.argv[1], img_size=24,
       epochs=3, population=2, sample_size=2, max_concurrent=2, grace_epochs=1,
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


def test_the_search_refits_its_predictor_near_the_budget_once(tmp_path, quick_timer, monkeypatch):
    from lightnets.search import latency
    from lightnets.search.latency import LatencyPredictor
    from lightnets.search.predictor import NEAR_BUDGET, fit_near_budget
    from lightnets.search.spec import SearchSpec

    predictor = LatencyPredictor("eager", 24, 1, cache_dir=tmp_path / "table", clock="cpu")
    spec = SearchSpec(data="digits", img_size=24, target="eager", latency_ms=5.0, threads=1,
                      epochs=2, trials=2)  # fmt: skip
    fit_near_budget(predictor, spec, lambda kind, trial, info: None)
    assert predictor.fit["budget_ms"] == 5.0 and predictor.fit["networks"] == NEAR_BUDGET + 1
    monkeypatch.setattr(latency, "time_modules", None)  # nothing may be timed again
    again = LatencyPredictor("eager", 24, 1, cache_dir=tmp_path / "table", clock="cpu")
    fit_near_budget(again, spec, lambda kind, trial, info: None)
    assert again.fit == predictor.fit
