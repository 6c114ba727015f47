"""What a finished search hands back (lightnets.search.searching): the candidates' results, the
latency of those trained to the end measured end to end on the target, the Pareto front
(OUT/front.json, front.md, front.png), the chosen network (OUT/best.toml: the highest objective
among the candidates measured within the budget), and the closing comparison of that network
with the zoo models measured within the same budget, at the same training budget (OUT/compare/).

Trials the scheduler stopped early are listed but stand on no front: their accuracy is that of
fewer epochs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lightnets import plotting
from lightnets.files import text_writer, write_together
from lightnets.models.arch import to_toml
from lightnets.search import front as front_mod
from lightnets.search import space
from lightnets.search.measure import measure_latencies, zoo_maker, zoo_models
from lightnets.search.spec import SearchSpec
from lightnets.search.trials import architecture, candidate_id, trial_result


def candidate_rows(spec: SearchSpec, out: Path, candidates) -> list[dict]:
    """One row per proposed candidate (the first `spec.trials`): its trial's result, predicted
    latency, parent and objective (at the predicted latency)."""
    rows = []
    for c in candidates[: spec.trials]:
        trial = candidate_id(c.index)
        result = trial_result(out / "trials" / trial, spec.epochs)
        acc = result["acc"]
        rows.append(
            {
                "id": trial,
                "table": c.table,
                "predicted_ms": c.predicted_ms,
                "parent": None if c.parent is None else candidate_id(c.parent),
                **result,
                "objective": None if acc is None else acc * spec.acc_factor(c.predicted_ms),
            }
        )
    return rows


def network_maker(table, img_size: int, num_classes: int) -> Callable[[], tuple]:
    """(network, example input) of a candidate, as the trial trained it."""

    def make():
        import torch

        model = space.build_network(table, img_size=img_size, num_classes=num_classes).eval()
        return model, torch.randn(1, 3, img_size, img_size)

    return make


def add_costs(row: dict, img_size: int, num_classes: int) -> None:
    import torch

    from lightnets.profiling import count_macs, count_params

    model = space.build_network(row["table"], img_size=img_size, num_classes=num_classes)
    row["params_m"] = count_params(model).learned / 1e6
    row["macs_m"] = count_macs(model, torch.randn(1, 3, img_size, img_size)).macs / 1e6


def hand_back(spec: SearchSpec, out: Path, rows, failed, classes: int, emit) -> dict:
    """Measure the candidates that may be on the front, then write the front and best.toml."""
    # every candidate trained to the end, not only those the predictions put on the front: at
    # 32 px the predictor erred by up to 74% on single networks (benchmarks/latency_predictor.py)
    chosen = [r for r in rows if r["status"] == "finished"]
    emit("measure", None, {"candidates": len(chosen)})
    makers = {r["id"]: network_maker(r["table"], spec.img_size, classes) for r in chosen}
    measured = measure_latencies(makers, spec.target, spec.img_size, spec.threads, out)
    for r in chosen:
        r["latency_ms"], r["target"] = measured[r["id"]], spec.target
        if r["latency_ms"] is not None:
            r["objective"] = r["acc"] * spec.acc_factor(r["latency_ms"])
        add_costs(r, spec.img_size, classes)
    front = front_mod.pareto_front(chosen)
    best = front_mod.choose_best(chosen, spec.latency_ms)
    for r in front:
        r["mark"] = "front"
    if best is not None:
        best["mark"] = "best"
    notes = handback_notes(spec, rows, chosen, best, failed)
    return write_front(spec, out, rows, front, best, failed, notes)


def handback_notes(spec: SearchSpec, rows, chosen, best, failed) -> list[str]:
    stopped = [r["id"] for r in rows if r["status"] == "stopped"]
    lines = [
        f"{len(rows)} candidates; the {len(chosen)} trained to the end measured end to end on "
        f"{spec.target} ({spec.img_size} px, {spec.threads} thread(s), batch 1)."
    ]
    if stopped:
        lines.append(f"Stopped early by ASHA (on no front): {', '.join(stopped)}.")
    if failed:
        lines.append(f"Failed trials (see OUT/logs): {', '.join(sorted(failed))}.")
    if best is None:
        lines.append(
            f"No candidate measured within {spec.latency_ms:.3g} ms: no best.toml (the predictor "
            "was optimistic here; see benchmarks/latency_predictor.py)."
        )
    return lines


def _public(row: dict, out: Path) -> dict:
    """A row without its table (the candidate's file says it), JSON-ready."""
    kept = {k: v for k, v in row.items() if k != "table"}
    kept["arch_file"] = str(out / "candidates" / f"{row['id']}.toml")
    return kept


def write_front(spec, out: Path, rows, front, best, failed, notes) -> dict:
    """front.json / front.md, front.png and best.toml, replaced together (files.write_together:
    Ctrl-C or an error leaves the previous ones); returns what front.json holds."""
    title = f"search on {Path(spec.data).name}, {spec.target}, budget {spec.latency_ms:.3g} ms"
    figure, note = front_mod.front_chart(rows, front, best, spec.latency_ms, title)
    notes = [*notes, note] if note else notes
    writes = {"front.json": None, "front.md": None}  # filled below, from `result`
    if figure is not None:
        writes["front.png"] = partial(plotting.save_png, figure)
    if best is not None:
        writes["best.toml"] = text_writer(to_toml(architecture(best["table"])))
    result = {
        "spec": spec.to_dict(),
        "out": str(out),
        "front": [_public(r, out) for r in front],
        "best": None if best is None else _public(best, out),
        "candidates": [_public(r, out) for r in rows],
        "failed": failed,
        "notes": notes,
        "files": {name: str(out / name) for name in writes},
    }
    writes["front.json"] = text_writer(json.dumps(result, indent=1))
    text = front_mod.render_front(result["front"], "markdown", notes=notes)
    writes["front.md"] = text_writer(text + "\n")
    write_together({out / name: write for name, write in writes.items()})
    return result


def closing_compare(spec, out: Path, best: dict, classes: int, emit, placement, runner) -> dict:
    """`compare` of the chosen network with the zoo models measured within the budget on the
    target (and the model of --latency-of, always), at the search's epochs, images per class,
    image size, training flags and `seeds`, placed on Ray as the search (a Placement)."""
    from lightnets.compare import compare

    zoo = measure_latencies(
        {name: zoo_maker(name, spec.img_size, classes) for name in zoo_models()},
        spec.target,
        spec.img_size,
        spec.threads,
        out,
    )
    within = sorted((n for n, ms in zoo.items() if ms is not None and ms <= spec.latency_ms),
                    key=lambda n: zoo[n])  # fmt: skip
    if spec.latency_of is not None and spec.latency_of not in within:
        within.insert(0, spec.latency_of)  # the budget's own model, measured again a bit slower
    winner = f"searched_{best['id']}"
    emit("compare", None, {"models": within, "winner": winner, "zoo_ms": zoo})
    runtime = "onnxruntime" if spec.target == "onnxruntime:fp32" else "eager"
    result = compare(
        [winner, *within],
        spec.data,
        output=out / "compare",
        epochs=spec.epochs,
        seeds=spec.seeds,
        img_size=spec.img_size,
        train_args=spec.train_args,
        images_per_class=spec.images_per_class,
        deterministic=spec.deterministic,
        runtime=runtime,
        latency_threads=spec.threads,
        archs={winner: str(out / "best.toml")},
        on_event=lambda kind, trial, info: emit(f"compare:{kind}", trial, info),
        runner=runner,
        **dataclasses.asdict(placement),
    )
    # compare times eager (or ORT fp32) latency; the budget is on the target, so each row also
    # carries the target latency measured above, the figure the budget was held to
    target_ms = {**zoo, winner: best.get("latency_ms")}
    for row in result["models"]:
        row["target_ms"] = target_ms.get(row["model"])
    return {"winner": winner, "zoo_ms": zoo, "within": within, "result": result}


def closing_columns(spec: SearchSpec) -> tuple:
    """compare's columns plus the target latency after its own (eager) one."""
    from lightnets.compare.results import COLUMNS
    from lightnets.tables import Column

    target = Column(
        "target_ms",
        f"{spec.target} ms",
        ".3f",
        f"{spec.target} ms: latency on the search's target ({spec.img_size} px, batch 1, "
        f"{spec.threads} thread(s), fastest of interleaved rounds), as held to the budget of "
        f"{spec.latency_ms:.3g} ms.",
    )
    at = next(i for i, c in enumerate(COLUMNS) if c.key == "latency_ms") + 1
    return (*COLUMNS[:at], target, *COLUMNS[at:])
