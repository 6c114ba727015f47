"""What a search hands back (docs/search.md, "What it does" 6): the front, best.toml and the
candidates' files of a whole search (fake Tune), and the printed result; compare training a
network from its architecture file (the closing comparison's `searched_<id>`); slow (`-m slow`,
needs ray): a real tiny search on Ray with its closing comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _search_helpers import BUDGET, SPACE24, FakeTune, run_search, search_argv, write_run
from test_compare import image_folder, needs_ray

from lightnets.cli import main as cli_main
from lightnets.errors import ConfigError
from lightnets.models.arch import read_arch
from lightnets.search import space
from lightnets.search.spec import read_spec


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


# ------------------------------------------------------------------------------ compare


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
    # the closing table shows each model's latency on the search's target beside compare's own
    assert f"{result['spec']['target']} ms" in captured.out.split("closing comparison (")[1]
    assert result["best"] is not None and len(result["candidates"]) == 3
    compared = json.loads((out / "compare" / "results.json").read_text())
    names = [row["model"] for row in compared["models"]]
    assert names[0] == f"searched_{result['best']['id']}" and len(names) >= 2
    assert all(row["seeds"] == 1 for row in compared["models"])
    kept = read_arch(out / "compare" / "trials" / f"{names[0]}-s0" / "arch.toml")
    assert kept == read_arch(out / "best.toml")
