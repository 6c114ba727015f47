"""lightnets.search: the search space, the cut of a network into timed parts, the cached latency
table and its fit. Timings are measurements: only their sanity is asserted here (a generous
factor); how well the predictor does is benchmarks/latency_predictor.py's question."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from lightnets.errors import ConfigError
from lightnets.models.mixnet import MIXNET_S
from lightnets.profiling import count_macs, count_params
from lightnets.search import latency, space
from lightnets.search.latency import LatencyPredictor, fit_line
from lightnets.search.parts import network_modules, network_parts
from lightnets.search.runner import LatencyTarget
from lightnets.search.timing import Timing

TABLES = {
    "mixnet_s": MIXNET_S,
    "smallest": space.smallest(),
    "largest": space.largest(),
    "sample": space.sample(random.Random(3)),
}
FAST = {"rounds": 1, "min_run_time": 0.01}


# ---------------------------------------------------------------------------- space


def test_mixnet_s_is_in_the_space():
    assert space.contains(MIXNET_S)
    assert space.contains(space.smallest()) and space.contains(space.largest())


@pytest.mark.parametrize("seed", range(6))
def test_samples_build_and_run_at_32px(seed):
    table = space.sample(random.Random(seed))
    assert space.contains(table)
    model = space.build_network(table, img_size=32, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 7) and torch.isfinite(out).all()


def test_mutate_changes_exactly_one_field():
    rng = random.Random(0)
    table = space.sample(rng)
    for _ in range(50):
        child = space.mutate(table, rng)
        assert len(space.differences(table, child)) == 1
        assert space.contains(child)
        table = child


def test_mutate_refuses_a_table_outside_the_space():
    with pytest.raises(ConfigError):
        space.mutate(MIXNET_S[:-1], random.Random(0))


def test_smallest_and_largest_bound_every_sample_in_macs():
    def macs(table):
        model = space.build_network(table, img_size=32, num_classes=10)
        return count_macs(model, torch.randn(1, 3, 32, 32)).macs

    low, high = macs(space.smallest()), macs(space.largest())
    rng = random.Random(1)
    for _ in range(8):
        assert low <= macs(space.sample(rng)) <= high


# ---------------------------------------------------------------------------- parts


@pytest.mark.parametrize("name", TABLES)
@pytest.mark.parametrize("img_size", [32, 224])
def test_parts_cover_every_module_once(name, img_size):
    table = TABLES[name]
    model = space.build_network(table, img_size=img_size)
    parts = network_parts(table, img_size)
    modules = network_modules(model)
    assert [p.kind for p in parts] == ["stem"] + ["block"] * (len(parts) - 2) + ["head"]
    assert [count_params(p.build()).learned for p in parts] == [
        count_params(m).learned for m in modules
    ]
    assert sum(count_params(p.build()).learned for p in parts) == count_params(model).learned


def test_parts_see_the_shapes_the_network_feeds_them():
    table = TABLES["sample"]
    model = space.build_network(table, img_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for part, module in zip(network_parts(table, 32), network_modules(model)):
            assert tuple(x.shape[1:]) == (part.in_channels, *part.size)
            x = module(x)
            assert part.build()(part.example()).shape == x.shape


def test_distinct_parts_have_distinct_keys():
    parts = {p for t in TABLES.values() for p in network_parts(t, 224)}
    assert len({p.key for p in parts}) == len(parts)


# ---------------------------------------------------------------------------- targets


def test_target_names():
    assert LatencyTarget.parse("eager").name == "eager"
    with pytest.raises(ConfigError):
        LatencyTarget.parse("eager:int8")
    pytest.importorskip("onnxruntime")
    assert LatencyTarget.parse("onnxruntime:int8") == LatencyTarget("onnxruntime", "int8")
    assert LatencyTarget.parse("onnxruntime").name == "onnxruntime:fp32"
    with pytest.raises(KeyError, match="onnxruntime"):
        LatencyTarget.parse("onnxrutime:fp32")


@pytest.mark.parametrize("target", ["eager", "onnxruntime:fp32"])
def test_a_compiled_part_computes_the_part(target):
    if target != "eager":
        pytest.importorskip("onnxruntime")
    part = network_parts(MIXNET_S, 32)[4]  # mixed kernels, SE, swish
    module, x = part.build(), part.example()
    call = LatencyTarget.parse(target).compile(module, x, threads=1, copies=3)
    with torch.no_grad():
        expected = module(x)
    for _ in range(3):  # each copy once
        out = call()
        out = out[0] if isinstance(out, list) else out
        torch.testing.assert_close(torch.as_tensor(out), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- the cached table


def test_fit_line():
    assert fit_line([1.0, 2.0, 4.0], [3.0, 5.0, 9.0]) == pytest.approx((2.0, 1.0))
    assert fit_line([2.0, 2.0], [3.0, 5.0]) == pytest.approx((1.0, 2.0))  # intercept only


@pytest.fixture
def fake_timer(monkeypatch):
    """time_modules replaced by one that counts calls and gives every part 1 ms, a call 0.25 (the
    fastest round, the default statistic; medians twice that)."""
    calls = []

    def fake(target, items, threads, **kwargs):
        names = [name for name, _ in items]
        calls.append(names)
        ms = {name: 0.25 if name == latency.CALL else 1.0 for name in names}
        return {name: Timing(2 * ms[name], ms[name], 1) for name in names}

    monkeypatch.setattr(latency, "time_modules", fake)
    return calls


def test_a_cache_hit_does_not_time_again(tmp_path, fake_timer):
    predictor = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path)
    assert predictor.measure_parts([MIXNET_S]) == 13 + 1  # MixNet-S's distinct parts, a call
    assert predictor.measure_parts([MIXNET_S]) == 0
    again = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path)  # from the file
    assert again.sum_ms(MIXNET_S) == pytest.approx(0.75 * len(network_parts(MIXNET_S, 32)))
    assert len(fake_timer) == 1
    # a new table times only the parts it does not share
    assert predictor.measure_parts([space.smallest()]) == len(fake_timer[1]) < 14
    data = json.loads(predictor.path.read_text())
    assert data["key"]["cpu_class"] and data["key"]["version"] == torch.__version__


def test_a_cached_fit_is_used(tmp_path, fake_timer):
    predictor = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path)
    fit = predictor.calibrate([space.smallest(), MIXNET_S, TABLES["sample"]])
    assert (fit["scale"], fit["intercept_ms"]) == fit_line(fit["sum_ms"], fit["measured_ms"])
    assert fit["measured_ms"] == [1.0] * 3  # the fake's figure, as networks are timed the same way
    timed = len(fake_timer)
    again = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path)
    assert again.fit == fit and again.calibrate() == fit and len(fake_timer) == timed


def test_end_to_end_measurements_take_the_fastest_round_as_the_predictor(tmp_path, monkeypatch):
    """The search measures candidates and zoo models with the predictor's statistic (the fastest
    of the rounds), cached under a key that says so: a figure of another statistic is not reused."""
    from lightnets.search import measure

    def timed(calls, *args, **kwargs):  # median 2 ms, fastest round 1 ms
        return {name: Timing(2.0, 1.0, 5) for name in calls}

    def make():
        return torch.nn.Conv2d(3, 4, 3).eval(), torch.zeros(1, 3, 8, 8)

    monkeypatch.setattr(measure, "time_calls", timed)
    assert measure.measure_latencies({"net": make}, "eager", 8, 1, tmp_path) == {"net": 1.0}
    (key,) = json.loads((tmp_path / measure.MEASURED_FILE).read_text())
    assert key.endswith(":min5")


def test_the_cache_key_changes_with_threads_size_and_target(tmp_path):
    base = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path)
    others = [
        LatencyPredictor("eager", 32, 2, cache_dir=tmp_path),
        LatencyPredictor("eager", 64, 1, cache_dir=tmp_path),
        LatencyPredictor("eager", 32, 1, cache_dir=tmp_path, small_input=False),
    ]
    if _has("onnxruntime"):
        others.append(LatencyPredictor("onnxruntime:fp32", 32, 1, cache_dir=tmp_path))
        others.append(LatencyPredictor("onnxruntime:int8", 32, 1, cache_dir=tmp_path))
    paths = {base.path, *(p.path for p in others)}
    assert len(paths) == len(others) + 1
    assert all(p.path.parent == tmp_path for p in others)


def test_the_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "env"))
    assert LatencyPredictor("eager", 32, 1).path.parent == tmp_path / "env"


def test_predicted_eager_latency_is_near_the_measured(tmp_path):
    predictor = LatencyPredictor("eager", 32, 1, cache_dir=tmp_path, **FAST)
    predictor.calibrate([space.smallest(), MIXNET_S])
    table = TABLES["sample"]
    predicted, (measured,) = predictor.predict(table), predictor.measure([table])
    assert predicted > 0 and 0.2 < predicted / measured < 5  # a sanity bound, not a claim


@pytest.mark.slow
def test_an_int8_part_with_quantized_boundaries_computes_the_same(tmp_path):
    """The stripped part fed the input's quantized values gives the quantized output."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    from lightnets.deploy.onnx import ort_session
    from lightnets.deploy.reparam import reparameterize
    from lightnets.deploy.targets import get_target
    from lightnets.search.qdq import strip_boundaries

    part = network_parts(MIXNET_S, 32)[5]  # a block with its residual
    x = part.example()
    path = get_target("onnxruntime").export(
        reparameterize(part.build()), tmp_path / "p.onnx", x, "int8", [part.example(4)], {}
    )
    full = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in full.graph.initializer}
    q = next(n for n in full.graph.node if n.input[0] == "input")
    dq = next(n for n in full.graph.node if n.output[0] == "output")
    (expected,) = ort_session(path, 1).run(None, {"input": x.numpy()})
    strip_boundaries(path, inputs=True, outputs=True)
    scale, zero = values[q.input[1]], values[q.input[2]].astype(np.int32)
    xq = np.clip(np.round(x.numpy() / scale) + zero, 0, 255).astype(np.uint8)
    session = ort_session(path, 1)
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(uint8)"
    (yq,) = session.run(None, {session.get_inputs()[0].name: xq})
    y = (yq.astype(np.float32) - values[dq.input[2]]) * values[dq.input[1]]
    np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.slow
def test_predicted_int8_latency_is_near_the_measured(tmp_path):
    pytest.importorskip("onnxruntime")
    predictor = LatencyPredictor("onnxruntime:int8", 32, 1, cache_dir=tmp_path, **FAST)
    predictor.calibrate([space.smallest(), MIXNET_S])
    table = TABLES["sample"]
    predicted, (measured,) = predictor.predict(table), predictor.measure([table])
    assert 0.2 < predicted / measured < 5


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
