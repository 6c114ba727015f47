"""What the search tests (tests/test_search_*.py) share: a fake latency and accuracy over the
space at 24 px, a fake Tune that "trains" a candidate by writing its run dir, a whole search on
them (lightnets.search.searching.search with the fakes in place of the predictor and Ray), the
command's argv, and the fixtures `data`, `fake_measure`, `quick_timer` and `learnable`
(registered for every test file by conftest.py's pytest_plugins).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from test_compare import image_folder

from lightnets.models.arch import read_arch
from lightnets.search import space

SPACE24 = space.fit_space(24)


def fake_ms(table) -> float:
    """A latency that grows with every field the way the real one does (grouped 1x1 convs: one
    operator per group)."""

    def row_cost(r) -> float:
        kernels, groups = 1 + sum(r.k) / 10, 1 + (sum(r.pw) - 2) / 10
        act = 1.2 if r.act == "swish" else 1
        return r.n * r.out * r.e * kernels * act * (1 + r.se) * groups

    return 1 + sum(row_cost(r) for r in table) / 5000


def fake_acc(table) -> float:
    return round(40 + sum(r.n * r.out * r.e for r in table) / 100 + sum(len(r.k) for r in table), 4)


class FakePredictor:
    def predict(self, table):
        return fake_ms(table)


BUDGET = 5.0  # fake ms: smallest 1.6, largest 13


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


# ------------------------------------------------------------------------------ the command


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


@pytest.fixture
def learnable(tmp_path):
    return image_folder(tmp_path / "learnable", classes=("a", "b", "c"), train=16, val=16)
