"""`lightnets verify ARTIFACT...`: re-run an artifact's reference set on this machine.

    lightnets verify deploy/artifacts/mixnet_s-openvino-int8.xml
    lightnets verify m-int8.onnx m-int8.tflite --threads 1 --format json

Every export stores a few of the inputs it was checked on and the PyTorch model's fp32 logits
(`<artifact>.ref.npz`, lightnets.deploy.reference). This command runs the artifact on them with
this machine's runtime and CPU and applies the export check's rule: fp32/fp16/bf16 within the
relative error the export allowed, int8 by top-1 agreement and logit cosine; an int8 file that
reproduces its outputs on the exporting machine (also stored) passes, since the export judged it
on every calibration image and 16 are few. It prints both CPU classes, the one that verified
the artifact at export and this one: int8 and bf16 kernels differ between AVX2, AVX-512 VNNI,
AMX and ARM. Exit status 0 when every artifact passes, 1 when one computes differently, 2 when
one cannot be checked (a missing or edited sidecar, another artifact's reference set, a changed
file, a runtime that is not installed).
"""

from __future__ import annotations

import argparse
import json

from lightnets.commands import _flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightnets verify",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="files lightnets exported")
    p.add_argument("--threads", type=_flags.positive_int, default=None)
    _flags.add_format(p, choices=("table", "json"))
    return p


def verify(path, threads: int | None = None) -> dict:
    """The reference set of the artifact at `path` re-run here: a dict for the table / JSON."""
    from pathlib import Path

    from lightnets.cpu_class import cpu_class
    from lightnets.deploy import reference, sidecar, targets
    from lightnets.deploy.loaders import run_in_batches

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    metadata = sidecar.read_sidecar(path)
    target = targets.require(targets.target_for_artifact(path), to_run=True)
    stored = reference.read_reference(path, metadata)
    run = targets.load_artifact(target, path, stored.inputs[:1].shape, threads)
    actual = run_in_batches(run, stored.inputs, metadata["batch"])
    check = reference.check_reference(actual, stored, metadata["precision"],
                                      metadata["reference"]["limits"])  # fmt: skip
    verified = metadata.get("verification", {})
    return {
        "artifact": str(path),
        "runtime": target.runtime,
        "precision": metadata["precision"],
        "images": int(stored.inputs.shape[0]),
        **{k: v for k, v in check.__dict__.items() if v is not None and k != "passed"},
        "cpu_class": cpu_class(),
        "verified_on": verified.get("cpu_class", "unknown"),
        "passed": check.passed,
    }


def main(argv: list[str] | None = None) -> int:
    args = _flags.parse_args(build_parser(), argv)
    rows = [verify(path, args.threads) for path in args.artifacts]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    for row in rows if args.format == "table" else ():
        if "relative_error" in row:
            figures = f"relative error {row['relative_error']:.1e}"
        else:
            figures = f"agreement {100 * row['agreement']:.1f}%, cosine {row['cosine']:.4f}"
        if "same_as_export" in row:
            figures += (f" (top-1 as at export on {100 * row['same_as_export']:.0f}%, cosine "
                        f"{row['cosine_vs_export']:.4f} with the export's outputs)")  # fmt: skip
        print(
            f"{'ok' if row['passed'] else 'DIFFERS'}  {row['artifact']} ({row['runtime']} "
            f"{row['precision']}): {figures} on {row['images']} reference inputs; ran on "
            f"{row['cpu_class']}, verified at export on {row['verified_on']}"
            + (f" ({row['note']})" if row.get("note") else "")
        )
    return 0 if all(row["passed"] for row in rows) else 1
