"""lightnets.compare and the `compare` / `study` commands.

Fast tests: the statistics and verdicts against hand-computed values, the spec check, bad input
(one line, exit 2, nothing written), the study networks, and the resume logic with a fake trial
runner that writes run directories the way `lightnets train` does. Slow tests (`-m slow`, need
ray): a real tiny compare on Ray, every study at --scale tiny, a two-node cluster, and a trial
SIGKILLed mid-run that is retried, resumes and ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import lightnets
from lightnets.cli import main as cli_main
from lightnets.compare import stats
from lightnets.compare.comparison import compare
from lightnets.compare.spec import CompareSpec, check_same, read_spec, write_spec
from lightnets.compare.trials import FINISHED, NEW, RESUME, train_argv, trial_status
from lightnets.errors import ConfigError, UnknownNameError

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAVE_RAY, reason="ray not installed (pip install lightnets[sweep])"
)


def image_folder(root: Path, classes=("cat", "dog"), train: int = 8, val: int = 4, real=True):
    """root/train/<class>/*.png and root/val/<class>/*.png; `real=False` writes empty files
    (enough for the checks, which only list them)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if not real:
                    (folder / f"{i}.png").write_bytes(b"")
                    continue
                from PIL import Image

                x = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                x[:, : 8 + 8 * c] = 255 * (c % 2)  # a class-dependent band: learnable
                Image.fromarray(x).save(folder / f"{i}.png")
    return root


# ------------------------------------------------------------------------------ statistics


def test_summary_mean_and_sample_std():
    s = stats.summarize([70.0, 72.0, 74.0])
    assert s.mean == 72.0
    assert s.std == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / 2)
    assert s.text() == "72.00 ± 2.00"
    one = stats.summarize([71.5])
    assert one.mean == 71.5 and one.std is None and one.text() == "71.50"


def test_difference_within_noise_higher_lower_and_one_seed():
    a = stats.summarize([70, 72, 74])  # std 2
    b = stats.summarize([68, 69, 70])  # std 1
    d = stats.difference(a, b)
    assert d.delta == pytest.approx(3.0)
    assert d.noise == pytest.approx(math.sqrt(5))  # sqrt(2^2 + 1^2) = 2.236 < 3
    assert d.outcome == stats.HIGHER
    assert stats.difference(b, a).outcome == stats.LOWER
    c = stats.summarize([71, 72, 73])  # std 1; delta 0 <= sqrt(5)
    assert stats.difference(a, c).outcome == stats.WITHIN_NOISE
    # 2.2 < sqrt(5) = 2.236: within noise, though one mean is 2.2 points higher
    assert stats.difference(stats.summarize([70.2, 72.2, 74.2]), b).outcome == stats.HIGHER
    assert stats.difference(stats.summarize([69.2, 71.2, 73.2]), b).outcome == stats.WITHIN_NOISE
    assert stats.difference(stats.summarize([80]), b).outcome == stats.NO_SPREAD


def test_verdicts():
    a, b = stats.summarize([75, 76, 77]), stats.summarize([70, 71, 72])  # delta 5, noise 1.41
    assert stats.higher_verdict(a, b)[0] == stats.SUPPORTS
    assert stats.higher_verdict(b, a)[0] == stats.CONTRADICTS
    assert stats.higher_verdict(a, stats.summarize([74, 76, 78]))[0] == stats.INCONCLUSIVE
    assert stats.higher_verdict(stats.summarize([90]), b)[0] == stats.INCONCLUSIVE  # one seed
    assert stats.exact_verdict(True) == stats.SUPPORTS
    assert stats.exact_verdict(False) == stats.CONTRADICTS
    S, C, I = stats.SUPPORTS, stats.CONTRADICTS, stats.INCONCLUSIVE
    assert stats.combine([S, S]) == S
    assert stats.combine([S, I]) == I
    assert stats.combine([S, I, C]) == C
    assert stats.combine([]) == I


def test_peak_verdict():
    def series(*means):  # each with values mean-1, mean, mean+1: std 1, pair noise 1.41
        return [stats.summarize([m - 1, m, m + 1]) for m in means]

    assert stats.peak_verdict(series(70, 75, 71)) == (stats.SUPPORTS, 1)
    assert stats.peak_verdict(series(70, 75, 74)) == (stats.INCONCLUSIVE, 1)  # 75-74 < 1.41
    assert stats.peak_verdict(series(70, 72, 76)) == (stats.CONTRADICTS, 2)  # monotone
    assert stats.peak_verdict(series(70, 75, 76)) == (stats.INCONCLUSIVE, 2)
    with pytest.raises(ValueError):
        stats.peak_verdict(series(70, 71))


def test_model_rows_say_within_noise_instead_of_ranking():
    from lightnets.compare.results import model_rows, noise_lines

    trials = [
        {"model": m, "seed": s, "acc": acc}
        for m, accs in (("a", (70, 72, 74)), ("b", (71, 72, 73)), ("c", (60, 61, 62)))
        for s, acc in enumerate(accs)
    ]
    rows = {r["model"]: r for r in model_rows(["a", "b", "c"], trials, {})}
    assert rows["a"]["acc_mean"] == 72 and rows["a"]["acc_std"] == pytest.approx(2)
    assert rows["a"]["acc_seeds"] == "70.00 / 72.00 / 74.00"
    assert rows["a"]["acc_seed2"] == 74
    assert rows["a"]["vs_best"] == "best"  # max() keeps the first of equal means
    assert rows["b"]["vs_best"] == "+0.00 within noise"
    assert rows["c"]["vs_best"] == "-11.00 lower"
    assert noise_lines(list(rows.values())) == [
        "Within noise of the most accurate (a): b - no ranking among them."
    ]


# ------------------------------------------------------------------------------ claims


def fake_result(accs: dict[str, tuple], costs: dict[str, dict] | None = None) -> dict:
    trials = [
        {"model": m, "seed": s, "acc": a}
        for m, values in accs.items()
        for s, a in enumerate(values)
    ]
    rows = [{"model": m, **(costs or {}).get(m, {})} for m in accs]
    return {"trials": trials, "models": rows}


def test_kernel_size_claims_from_hand_made_results():
    from lightnets.compare.claims import SCALES, Evidence
    from lightnets.compare.mixconv_studies import kernel_size_claims

    tiny = SCALES["tiny"]
    accs = {
        "mobilenet_v2_k3_w035": (70, 71, 72),
        "mobilenet_v2_k5_w035": (75, 76, 77),
        "mobilenet_v2_k7_w035": (71, 72, 73),
        "mobilenet_v2_mixk5_w035": (79, 80, 81),
        "mobilenet_v2_mixk7_w035": (77, 78, 79),
    }
    macs = {m: {"macs_m": 10.0 + i} for i, m in enumerate(accs)}
    macs["mobilenet_v2_mixk5_w035"] = {"macs_m": 10.5}  # fewer than k5's 11
    rise_fall, mixed = kernel_size_claims(Evidence(fake_result(accs, macs)), tiny)
    assert rise_fall["verdict"] == stats.SUPPORTS
    assert "mobilenet_v2_k5_w035" in rise_fall["evidence"]
    assert mixed["verdict"] == stats.SUPPORTS
    macs["mobilenet_v2_mixk5_w035"] = {"macs_m": 12.0}  # more accurate but not cheaper
    _, mixed = kernel_size_claims(Evidence(fake_result(accs, macs)), tiny)
    assert mixed["verdict"] == stats.CONTRADICTS
    # the best MDConv's mean leads within noise: its MACs against k5 (more) decide nothing
    noisy = {
        **accs,
        "mobilenet_v2_mixk5_w035": (70, 76, 82),
        "mobilenet_v2_mixk7_w035": (70, 77, 84),
    }
    _, mixed = kernel_size_claims(Evidence(fake_result(noisy, macs)), tiny)
    assert mixed["verdict"] == stats.INCONCLUSIVE and "14.00 vs" in mixed["evidence"]
    one_seed = {m: v[:1] for m, v in accs.items()}
    verdicts = [c["verdict"] for c in kernel_size_claims(Evidence(fake_result(one_seed)), tiny)]
    assert verdicts == [stats.INCONCLUSIVE, stats.INCONCLUSIVE]


def test_networks_near_chance_support_no_claim(tmp_path):
    from lightnets.compare.claims import SCALES, Evidence, _higher
    from lightnets.compare.mixconv_studies import kernel_size_claims

    accs = {  # 10 classes: chance is 10%; k5 "beats" the others by more than the seeds' spread
        "mobilenet_v2_k3_w035": (9.0, 9.2),
        "mobilenet_v2_k5_w035": (11.4, 11.6),
        "mobilenet_v2_k7_w035": (9.8, 10.0),
        "mobilenet_v2_mixk5_w035": (11.8, 12.0),
        "mobilenet_v2_mixk7_w035": (10.0, 10.2),
    }
    result = fake_result(accs)
    (tmp_path / "classes.json").write_text(json.dumps([str(i) for i in range(10)]))
    assert _higher(Evidence(result), "mobilenet_v2_k5_w035", "mobilenet_v2_k3_w035")[0] == (
        stats.SUPPORTS
    )  # without the class count nothing says where chance is
    for trial in result["trials"]:
        trial["run_dir"] = str(tmp_path)
    ev = Evidence(result)
    assert ev.chance == 10.0
    verdict, evidence = _higher(ev, "mobilenet_v2_k5_w035", "mobilenet_v2_k3_w035")
    assert verdict == stats.INCONCLUSIVE and "near chance (10.0%)" in evidence
    rise_fall, mixed = kernel_size_claims(ev, SCALES["tiny"])
    assert rise_fall["verdict"] == mixed["verdict"] == stats.INCONCLUSIVE
    learned = {m: tuple(a + 60 for a in v) for m, v in accs.items()}
    for trial, row in zip(result["trials"], fake_result(learned)["trials"]):
        trial["acc"] = row["acc"]
    assert _higher(Evidence(result), "mobilenet_v2_k5_w035", "mobilenet_v2_k3_w035")[0] == (
        stats.SUPPORTS
    )


def test_split_study_pairs_only_kernel_sets_where_the_splits_differ():
    from lightnets.compare.claims import SCALES
    from lightnets.compare.mixconv_studies import split_models
    from lightnets.compare.variants import create
    from lightnets.layers.mixconv import split_channels

    assert split_channels(32, 2, "exponential") == split_channels(32, 2, "equal")
    for scale in SCALES.values():
        models = split_models(scale)
        assert models and not any("mixk5" in m for m in models)
    a, b = split_models(SCALES["tiny"])[:2]  # {3, 5, 7}: the two networks differ
    assert sum(p.numel() for p in create(a).parameters()) != sum(
        p.numel() for p in create(b).parameters()
    )


def test_vgnet_fixed_kernel_claims_check_the_parameter_budget():
    from lightnets.compare.claims import SCALES, Evidence
    from lightnets.compare.vgnet_studies import fixed_kernel_claims

    accs = {
        "vgnet_c_1_0mp": (60, 61, 62),
        "vgnet_g_1_0mp": (65, 66, 67),
        "vgnet_g_1_5mp": (70, 71, 72),
        "vgnet_f_1_5mp": (64, 65, 66),
        "vgnet_f_1_5mp_gauss": (64, 65, 66),
    }
    costs = {m: {"params_m": 1.0 if "1_0" in m else 1.5} for m in accs}
    g_vs_c, f_vs_g, gauss = fixed_kernel_claims(Evidence(fake_result(accs, costs)), SCALES["tiny"])
    assert g_vs_c["verdict"] == stats.SUPPORTS
    assert f_vs_g["verdict"] == stats.SUPPORTS
    assert gauss["verdict"] == stats.INCONCLUSIVE  # equal means
    costs["vgnet_g_1_0mp"] = {"params_m": 1.2}  # not the same budget any more
    g_vs_c, *_ = fixed_kernel_claims(Evidence(fake_result(accs, costs)), SCALES["tiny"])
    assert g_vs_c["verdict"] == stats.CONTRADICTS


def test_study_and_scale_names():
    from lightnets.compare.studies import STUDIES, get_scale, get_study

    assert set(STUDIES) == {
        "mixconv-kernel-size",
        "mixconv-split",
        "mixconv-dilation",
        "vgnet-fixed-kernels",
        "vgnet-strided-kernels-blur",
    }
    with pytest.raises(UnknownNameError, match="did you mean mixconv-split"):
        get_study("mixconv-splits")
    with pytest.raises(ConfigError, match="tiny, small, paper"):
        get_scale("huge")


# ------------------------------------------------------------------------------ study networks


def test_variant_networks_without_touching_the_registry():
    import torch

    from lightnets.compare import variants
    from lightnets.layers import MixConv2d

    before = lightnets.list_models()
    base = variants.create("mobilenet_v1_mixk7_w035", num_classes=3, small_input=True)
    exp = variants.create("mobilenet_v1_mixk7_exp_w035", num_classes=3, small_input=True)
    dil = variants.create("mobilenet_v1_mixk7_dil_w035", num_classes=3, small_input=True)
    assert lightnets.list_models() == before
    first = [next(m for m in net.modules() if isinstance(m, MixConv2d)) for net in (base, exp, dil)]
    assert first[0].in_splits == [6, 5, 5] and first[0].kernel_size == (3, 5, 7)
    assert first[1].in_splits == [8, 4, 4]  # exponential: half to the 3x3 group
    assert first[2].kernel_size == (3, 3, 3) and first[2].dilation == (1, 2, 3)
    x = torch.randn(1, 3, 32, 32)
    for net in (base, exp, dil):
        assert net.eval()(x).shape == (1, 3)
    assert exp.model_name == "mobilenet_v1_mixk7_exp_w035"
    assert (
        variants.card("mobilenet_v2_k7_w050").min_input
        == lightnets.model_card("mobilenet_v2_k7").min_input
    )
    assert variants.canonical("mobilenetv2_035") == "mobilenet_v2_w035"
    with pytest.raises(UnknownNameError, match="mobilenet_v2_k4"):
        variants.canonical("mobilenet_v2_k4_exp")


# ------------------------------------------------------------------------------ spec


def spec(**changes) -> CompareSpec:
    base = dict(models=("m",), seeds=(0,), data="/d", img_size=32, epochs=2)
    return CompareSpec(**{**base, **changes})


def test_spec_round_trip_and_mismatch_refusal(tmp_path):
    write_spec(tmp_path, spec())
    assert read_spec(tmp_path) == spec()
    check_same(tmp_path, spec(models=("m", "n"), seeds=(0, 1)))  # other trials: same comparison
    with pytest.raises(ConfigError, match="epochs 2 there, 3 now"):
        check_same(tmp_path, spec(epochs=3))
    with pytest.raises(ConfigError, match="train_args"):
        check_same(tmp_path, spec(train_args=("--lr", "0.1")))
    other = tmp_path / "other"
    (other / "trials" / "x-s0").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no compare.json"):
        check_same(other, spec())


# ------------------------------------------------------------------------------ trials + resume


def test_train_argv_fresh_and_resume():
    fresh, resume = train_argv(
        "mixnet_s",
        1,
        "/o/trials/mixnet_s-s1",
        data="/d",
        img_size=32,
        epochs=5,
        recipe="mixnet",
        deterministic=True,
        train_args=("--lr", "0.05"),
        placement=("--threads", "2"),
    )
    assert fresh == (
        "--model",
        "mixnet_s",
        "--data",
        "/d",
        "--img-size",
        "32",
        "--seed",
        "1",
        "--run-dir",
        "/o/trials/mixnet_s-s1",
        "--epochs",
        "5",
        "--recipe",
        "mixnet",
        "--deterministic",
        "--threads",
        "2",
        "--lr",
        "0.05",
    )
    assert resume == ("--resume", "/o/trials/mixnet_s-s1", "--threads", "2", "--epochs", "5")


def fake_train(run_dir: Path, model: str, seed: int, epochs: int, done: int | None = None):
    """A run dir as `lightnets train` leaves it after `done` of `epochs` epochs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": model, "seed": seed, "epochs": epochs, "img_size": 32, "in_chans": 3}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "classes.json").write_text(json.dumps(["cat", "dog"]))
    done = epochs if done is None else done
    rows = [
        {"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_acc": 50.0 + 10 * e + seed, "epoch_s": 1}
        for e in range(done)
    ]
    (run_dir / "metrics.json").write_text(json.dumps(rows))
    (run_dir / "last").mkdir(exist_ok=True)
    (run_dir / "last" / "state.pt").write_bytes(b"")


class FakeRunner:
    """Stands in for Ray: 'trains' each planned trial to the end and records what it was given."""

    def __init__(self, epochs: int):
        self.epochs, self.calls = epochs, []

    def __call__(self, plans, **placement):
        self.calls.append([p.id for p in plans])
        for p in plans:
            assert p.resume_argv[:2] == ("--resume", p.run_dir)
            fake_train(Path(p.run_dir), p.model, p.seed, self.epochs)
        return {}


def test_trial_status(tmp_path):
    assert trial_status(tmp_path / "none") == NEW
    fake_train(tmp_path / "a", "m", 0, epochs=3)
    assert trial_status(tmp_path / "a") == FINISHED
    fake_train(tmp_path / "b", "m", 0, epochs=3, done=1)
    assert trial_status(tmp_path / "b") == RESUME
    (tmp_path / "b" / "last" / "state.pt").unlink()  # died before its first checkpoint
    assert trial_status(tmp_path / "b") == NEW


def test_rerun_reuses_finished_and_resumes_interrupted_trials(tmp_path):
    data = image_folder(tmp_path / "data", real=False)
    out = tmp_path / "out"
    events = []
    run = FakeRunner(epochs=2)
    kwargs = dict(
        output=out,
        epochs=2,
        seeds=2,
        img_size=32,
        latency=False,
        runner=run,
        on_event=lambda kind, trial, info: events.append((kind, info)),
    )
    result = compare(["mobilenet_v2_w035"], str(data), **kwargs)
    assert run.calls == [["mobilenet_v2_w035-s0", "mobilenet_v2_w035-s1"]]
    (row,) = result["models"]
    assert row["seeds"] == 2 and row["acc_seeds"] == "60.00 / 61.00"
    assert 0.3 < row["params_m"] < 0.5 and row["macs_m"] > 0  # 2 classes, 32 px, stride-1 stem
    assert json.loads((out / "results.json").read_text())["models"][0]["acc_mean"] == 60.5
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()

    # s1 was interrupted after one epoch: only s1 runs again, from its checkpoint
    fake_train(out / "trials" / "mobilenet_v2_w035-s1", "mobilenet_v2_w035", 1, 2, done=1)
    events.clear()
    compare(["mobilenet_v2_w035"], str(data), **kwargs)
    assert run.calls[-1] == ["mobilenet_v2_w035-s1"]
    plan = next(info for kind, info in events if kind == "plan")
    assert plan["reused"] == ["mobilenet_v2_w035-s0"] and plan["resumed"] == [
        "mobilenet_v2_w035-s1"
    ]

    # everything finished: nothing runs (and Ray would not even be imported)
    compare(["mobilenet_v2_w035"], str(data), **kwargs)
    assert len(run.calls) == 2

    # a different budget into the same directory is refused, and nothing is overwritten
    before = (out / "compare.json").read_text()
    with pytest.raises(ConfigError, match="different comparison"):
        compare(["mobilenet_v2_w035"], str(data), **{**kwargs, "epochs": 3})
    assert (out / "compare.json").read_text() == before


def _sweep_without_ray(tmp_path, monkeypatch):
    """(data, out) with compare's sweep run by FakeRunner instead of Ray."""
    import contextlib

    from lightnets.compare import sweep

    runner = FakeRunner(epochs=1)
    monkeypatch.setattr(sweep, "require_ray", lambda: None)
    monkeypatch.setattr(sweep, "ray_session", lambda address: contextlib.nullcontext())
    monkeypatch.setattr(sweep, "run_on_ray", lambda plans, **kw: runner(plans, **kw))
    return image_folder(tmp_path / "data", real=False), tmp_path / "out"


def test_ctrl_c_in_the_sweep_exits_130_and_leaves_the_results_alone(tmp_path, capsys, monkeypatch):

    from lightnets.compare import sweep

    data, out = _sweep_without_ray(tmp_path, monkeypatch)
    argv = ["compare", "mobilenet_v2_w035", "--data", str(data), "--seeds", "2", "--epochs", "1"]
    argv += ["--img-size", "32", "--no-latency", "--no-progress", "-o", str(out)]
    assert cli_main(argv) == 0
    capsys.readouterr()
    files = {name: (out / name).read_bytes() for name in ("results.json", "results.md")}

    fake_train(out / "trials" / "mobilenet_v2_w035-s1", "mobilenet_v2_w035", 1, 1, done=0)

    def interrupted(plans, **kw):
        raise KeyboardInterrupt  # what Ctrl-C raises in tuner.fit without Tune's handler

    monkeypatch.setattr(sweep, "run_on_ray", interrupted)
    code = cli_main(argv)
    captured = capsys.readouterr()
    assert code == 130 and captured.out == ""
    assert captured.err.strip().splitlines() == ["lightnets compare: interrupted"]
    assert {name: (out / name).read_bytes() for name in files} == files


def test_ctrl_c_while_the_results_are_written_keeps_the_previous_ones(
    tmp_path, capsys, monkeypatch
):

    from lightnets import plotting

    data, out = _sweep_without_ray(tmp_path, monkeypatch)
    argv = ["compare", "mobilenet_v2_w035", "--data", str(data), "--epochs", "1"]
    argv += ["--img-size", "32", "--no-latency", "--no-progress", "-o", str(out)]
    assert cli_main([*argv, "--seeds", "1"]) == 0
    capsys.readouterr()
    names = ("results.json", "results.md", "results.csv", "curves.png")
    before = {name: (out / name).read_bytes() for name in names}

    def interrupted(figure, path):
        raise KeyboardInterrupt  # Ctrl-C while the chart, the last file, is saved

    save_png = plotting.save_png
    monkeypatch.setattr(plotting, "save_png", interrupted)
    code = cli_main([*argv, "--seeds", "2"])  # a second seed: other results
    captured = capsys.readouterr()
    assert code == 130 and captured.out == ""
    assert captured.err.strip().splitlines() == ["lightnets compare: interrupted"]
    assert {name: (out / name).read_bytes() for name in names} == before
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []

    monkeypatch.setattr(plotting, "save_png", save_png)
    assert cli_main([*argv, "--seeds", "2"]) == 0  # not interrupted: every file replaced
    assert all((out / name).read_bytes() != before[name] for name in names)


def test_write_together_replaces_all_files_or_none(tmp_path, monkeypatch):
    from lightnets import files

    paths = [tmp_path / "a.json", tmp_path / "b.md"]
    for path in paths:
        path.write_text("old")

    def fails(tmp):
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.write_together({paths[0]: files.text_writer("new"), paths[1]: fails})
    assert [p.read_text() for p in paths] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]  # no temporaries

    replace = os.replace

    def ctrl_c_after_the_first_rename(src, dst):
        replace(src, dst)
        if Path(dst) == paths[0]:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(files.os, "replace", ctrl_c_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt):  # held back until both are renamed
        files.write_together({p: files.text_writer("new") for p in paths})
    assert [p.read_text() for p in paths] == ["new", "new"]


@needs_ray
def test_run_on_ray_turns_off_tunes_sigint_handler(tmp_path, monkeypatch):
    # with its handler, Tune swallows Ctrl-C and returns the unfinished trials as if they failed
    from ray import tune

    from lightnets.compare import sweep
    from lightnets.compare.trials import TrialPlan

    seen = []

    class Tuner:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            seen.append(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER"))
            raise KeyboardInterrupt

    monkeypatch.setattr(tune, "Tuner", Tuner)
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "0")
    plan = TrialPlan("m-s0", "m", 0, str(tmp_path / "m-s0"), str(tmp_path / "m-s0.log"), (), ())
    with pytest.raises(KeyboardInterrupt):
        sweep.run_on_ray([plan], storage=str(tmp_path / ".tune"))
    assert seen == ["1"]


# ------------------------------------------------------------------------------ bad input


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = cli_main(list(argv))
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    err = capsys.readouterr().err
    return code, err


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert code == 2, err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def data(tmp_path):
    return str(image_folder(tmp_path / "data", real=False))


def test_bad_model_names(capsys, data, tmp_path):
    out = str(tmp_path / "out")
    line = one_line_error(*run_cli(capsys, "compare", "mixnet_ss", "--data", data, "-o", out))
    assert "unknown model 'mixnet_ss'" in line and "mixnet_s" in line
    line = one_line_error(*run_cli(capsys, "study", "mixconv-kernel", "--data", data))
    assert "unknown study" in line and "mixconv-kernel-size" in line
    assert not Path(out).exists()


def test_bad_image_size_data_and_seeds(capsys, data, tmp_path):
    out = str(tmp_path / "out")
    line = one_line_error(
        *run_cli(capsys, "compare", "vgnet_g_1_0mp", "--data", data, "--img-size", "4", "-o", out)
    )
    assert "vgnet_g_1_0mp cannot take 4 px images (min_input 8)" in line
    one_class = image_folder(tmp_path / "one", classes=("cat",), real=False)
    line = one_line_error(
        *run_cli(capsys, "compare", "mixnet_s", "--data", str(one_class), "-o", out)
    )
    assert "at least two classes" in line
    line = one_line_error(*run_cli(capsys, "compare", "mixnet_s", "--data", data, "--seeds", "0"))
    assert "--seeds" in line and "positive integer" in line
    with pytest.raises(ConfigError, match="seeds"):
        compare(["mixnet_s"], data, seeds=0)
    assert not Path(out).exists()


def test_bad_train_flags(capsys, data, tmp_path):
    out = str(tmp_path / "out")
    line = one_line_error(
        *run_cli(capsys, "compare", "mixnet_s", "--data", data, "--seed", "3", "-o", out)
    )
    assert "--seed is set by compare" in line and "--seeds" in line
    with pytest.raises(UnknownNameError, match="did you mean --lr-base"):
        compare(["mixnet_s"], data, train_args=["--lr-bas", "0.1"], output=out)
    assert not Path(out).exists()


def test_results_directory_of_another_comparison(capsys, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_spec(out, spec(data=data))
    line = one_line_error(
        *run_cli(capsys, "compare", "mixnet_s", "--data", data, "--img-size", "32", "-o", str(out))
    )
    assert "holds a different comparison" in line and "epochs 2 there, None now" in line


def test_missing_ray_is_one_line(capsys, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    line = one_line_error(
        *run_cli(capsys, "compare", "mixnet_s", "--data", data, "--img-size", "32", "-o", str(out))
    )
    assert "pip install lightnets[sweep]" in line
    assert not out.exists()


@needs_ray
def test_unreachable_ray_address_fails_fast(capsys, data, tmp_path):
    from lightnets.compare.sweep import check_address

    out = tmp_path / "out"
    start = time.monotonic()
    line = one_line_error(
        *run_cli(
            capsys,
            "compare",
            "mixnet_s",
            "--data",
            data,
            "--img-size",
            "32",
            "--address",
            "ray://127.0.0.1:9",
            "-o",
            str(out),
        )
    )
    assert "ray://127.0.0.1:9" in line and "no Ray cluster answers" in line
    assert not out.exists()
    with pytest.raises(ConfigError, match="192.0.2.1:10001"):  # TEST-NET-1: never answers
        check_address("ray://192.0.2.1:10001", timeout=0.5)
    assert time.monotonic() - start < 10
    with pytest.raises(ConfigError, match="expected auto"):
        check_address("http://x")


def test_cli_splits_train_flags_by_their_arity():
    from lightnets.commands.compare import build_parser, split_train_flags

    argv = ["m1", "--lr", "0.05", "m2", "--scale", "0.5", "1", "--no-strict", "--epochs", "3"]
    mine, train = split_train_flags(build_parser(), argv)
    assert mine == ["m1", "m2", "--epochs", "3"]
    assert train == ["--lr", "0.05", "--scale", "0.5", "1", "--no-strict"]


def test_import_loads_neither_ray_nor_matplotlib():
    code = (
        "import sys, lightnets.compare; "
        "print(sorted(m for m in ('ray', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_study_list(capsys):
    assert cli_main(["study"]) == 0
    out = capsys.readouterr().out
    assert "mixconv-kernel-size" in out and "tiny" in out


# ------------------------------------------------------------------------------ slow, on Ray


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return str(image_folder(tmp_path_factory.mktemp("tiny") / "data"))


TINY = ["--epochs", "1", "--img-size", "32", "--batch-size", "8", "--latency-threads", "1"]


@pytest.mark.slow
@needs_ray
def test_tiny_compare_on_ray(capsys, tiny_data, tmp_path):
    out = tmp_path / "out"
    argv = ["compare", "mobilenet_v2_w035", "vgnet_g_1_0mp", "--data", tiny_data, *TINY]
    assert cli_main([*argv, "-o", str(out), "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert [r["model"] for r in result["models"]] == ["mobilenet_v2_w035", "vgnet_g_1_0mp"]
    assert all(
        r["seeds"] == 1 and r["macs_m"] > 0 and r["latency_ms"] > 0 for r in result["models"]
    )
    assert "done mobilenet_v2_w035-s0" in captured.err
    for trial in ("mobilenet_v2_w035-s0", "vgnet_g_1_0mp-s0"):
        info = json.loads((out / "trials" / trial / "trial.json").read_text())
        assert info["attempts"] == 1 and info["node"]
    assert (out / "pareto.png").is_file() and (out / "curves.png").is_file()
    # the same command again: both trials reused, Ray not started
    assert cli_main([*argv, "-o", str(out)]) == 0
    assert "2 finished (reused), 0 resume from a checkpoint, 0 to run" in capsys.readouterr().err


@pytest.fixture(scope="module", autouse=True)
def _stop_ray():
    yield
    if "ray" in sys.modules and sys.modules["ray"] is not None:
        sys.modules["ray"].shutdown()


@pytest.fixture
def ray_local():
    """One local Ray session shared by the tests that use it (compare reuses a running one)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.fixture(autouse=True)
def _no_ray_memory_killer(monkeypatch):
    """On a shared test machine other processes' memory must not make Ray kill our trials."""
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")


@pytest.mark.slow
@needs_ray
@pytest.mark.parametrize(
    "name",
    [
        "mixconv-kernel-size",
        "mixconv-split",
        "mixconv-dilation",
        "vgnet-fixed-kernels",
        "vgnet-strided-kernels-blur",
    ],
)
def test_every_study_at_tiny_scale(ray_local, tiny_data, tmp_path, name):
    from lightnets.compare import study

    result = study(
        name,
        tiny_data,
        scale="tiny",
        output=tmp_path / name,
        latency=False,
        train_args=["--batch-size", "8"],
    )
    assert not result["failed"]
    assert result["claims"] and all(c["verdict"] in stats.VERDICTS for c in result["claims"])
    # one seed (no spread) of networks near chance: no measured comparison supports or
    # contradicts anything; only exact counts (params, MACs) may decide
    parts = [p for c in result["claims"] for p in c["evidence"].split("; ") if p.startswith("[")]
    measured = [p for p in parts if "M params" not in p and "M MACs" not in p]
    assert measured and all(p.startswith("[inconclusive]") for p in measured)
    assert (tmp_path / name / "study.md").is_file()
    if name == "vgnet-strided-kernels-blur":
        (row,) = result["kernels"]
        assert 0 < row["lfe_trained"] < 1 and row["kernels"] > 0


@pytest.mark.slow
@needs_ray
def test_two_node_cluster_places_trials_on_both_nodes(tiny_data, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # a session of an earlier test would be reused instead of the cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    try:
        nodes = {n.node_id for n in cluster.list_all_nodes()}
        result = compare(
            ["mobilenet_v2_w035", "mobilenet_v2_k3_w035"],
            tiny_data,
            output=tmp_path / "out",
            epochs=1,
            seeds=2,
            img_size=32,
            train_args=["--batch-size", "8"],
            latency=False,
            address=cluster.address,
            cpus_per_trial=1,
        )
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(result["trials"]) == 4
    used = {t["node"] for t in result["trials"]}
    assert used == nodes and len(nodes) == 2


@pytest.mark.slow
@needs_ray
def test_killed_trial_is_retried_and_ends_identical(ray_local, tiny_data, tmp_path):
    kwargs = dict(
        epochs=3,
        seeds=1,
        img_size=32,
        latency=False,
        train_args=["--batch-size", "4"],
        max_failures=1,
    )
    events = []
    out = tmp_path / "killed"
    trials = out / "trials"

    def kill_after_first_checkpoint():
        pid_file, state = trials / ".mobilenet_v2_w035-s0.pid", trials / "mobilenet_v2_w035-s0"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (state / "last" / "state.pt").is_file() and pid_file.is_file():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    killed = compare(
        ["mobilenet_v2_w035"],
        tiny_data,
        output=out,
        on_event=lambda kind, trial, info: events.append(kind),
        **kwargs,
    )
    killer.join(1)
    assert "retry" in events and not killed["failed"]
    (trial,) = killed["trials"]
    assert trial["attempts"] == 1 and trial["resumed"]  # one successful attempt, after a resume
    straight = compare(["mobilenet_v2_w035"], tiny_data, output=tmp_path / "straight", **kwargs)
    a = json.loads((trials / "mobilenet_v2_w035-s0" / "metrics.json").read_text())
    b = json.loads(Path(straight["trials"][0]["run_dir"], "metrics.json").read_text())
    keys = ("train_loss", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
