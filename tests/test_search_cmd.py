"""The `search` command and what a search settles before its first trial (issue 20): bad input
at the CLI (one line, exit 2, nothing written), another search in the output directory, the
budget of --latency-of measured once, and the predictor refitted near the budget once.
"""

from __future__ import annotations

import pytest
from _search_helpers import BUDGET, FakeTune, run_search, search_argv
from test_compare import image_folder, one_line_error

from lightnets.cli import main as cli_main
from lightnets.errors import ConfigError
from lightnets.search.spec import read_spec

# ------------------------------------------------------------------------------ bad input


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = cli_main(["search", *argv])
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    return code, capsys.readouterr().err


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


def test_a_different_search_in_the_same_output_is_refused(tmp_path, data, fake_measure):
    out = tmp_path / "out"
    run_search(out, FakeTune(), trials=4)
    before = (out / "search.json").read_text()
    with pytest.raises(ConfigError, match="holds a different search.*latency_ms 5.0 there"):
        run_search(out, FakeTune(), trials=4, latency_ms=4.0)
    assert (out / "search.json").read_text() == before


# ------------------------------------------------------------------------------ budget, predictor


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
