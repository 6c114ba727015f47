"""ExecuTorch export (.pte, XNNPACK delegate) and its Python runner.

fp32: `torch.export` -> `to_edge_transform_and_lower` with the XNNPACK partitioner. int8: PT2E
static quantization first (`XNNPACKQuantizer`, symmetric, per-channel weights, per-tensor
activations; `prepare_pt2e` / `convert_pt2e` from torchao, which torch 2.13 uses), calibrated on
the caller's batches; input and output stay float32 (the graph quantizes at its entry).

Batch: fixed, the example's (metadata "batch"); the runner splits larger batches and pads the
last part. A dynamic batch axis exported and ran for MobileNetV2, but not for models with channel
splits (MixConv, ShuffleNetV2): XNNPACK 1.5.1 delegates no split and no slice with a dynamic
shape, so the graph fell apart into ~36 delegate calls joined by portable split copies whose
tensors stayed sized for the traced batch (execute fails on any other batch).

Splits: `torch.split` / `chunk` along channels become one static slice per part before lowering,
which XNNPACK takes, so the whole network is one delegate call.

The metadata is embedded as a constant method `lightnets_metadata` returning its JSON (a string),
next to the sidecar the caller writes.

Re-parameterization: none. `lightnets export`, `lightnets deploy` and
lightnets.deploy.artifacts.export_verified hand this module the model as trained, in fp32 and
int8 alike (`reparameterize=False` in this runtime's row of lightnets.deploy.targets.TARGETS):
XNNPACK lowering folds BN into the convs itself (PT2E's prepare does for int8), and it runs
MixConv's split depthwise convs faster than one zero-padded merged conv. Measured in
docs/deploy.md, section "Re-parameterization".
"""

from __future__ import annotations

import copy
import json
import operator
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError, import_optional
from lightnets.files import atomic_write, check_writable

PRECISIONS = ("fp32", "int8")
MAX_CALIBRATION_BATCH = 256  # calibration runs in PyTorch, on a graph with a dynamic batch
METADATA_METHOD = "lightnets_metadata"


def _require_executorch():
    import_optional("executorch.exir", "executorch", "ExecuTorch export")
    import_optional("executorch.backends.xnnpack.partition.xnnpack_partitioner", "executorch",
                    "ExecuTorch export")  # fmt: skip


def batch_example(example: Tensor, max_batch: int) -> tuple[Tensor, tuple[dict]]:
    """(example, dynamic_shapes) for a batch axis of 1..max_batch. torch.export specialises a
    batch of 1, so a single image is traced as a pair."""
    example = example[:max_batch]
    if example.shape[0] == 1:
        example = torch.cat([example, example])
    return example, ({0: torch.export.Dim("batch", min=1, max=max_batch)},)


def pt2e_int8(
    model: nn.Module,
    example: Tensor,
    quantizer,
    calibration: Iterable[Tensor] | None,
    *,
    dynamic_shapes=None,
    max_batch: int | None = None,
    fold_quantize: bool = True,
) -> torch.fx.GraphModule:
    """`model` with PT2E quantize/dequantize pairs from `quantizer`, observed on `calibration`.

    Calibration batches are split into chunks of at most `max_batch` (the exported graph's
    bound). Raises ConfigError when `calibration` is None or empty: the activation ranges of a
    static int8 model come only from it.
    """
    if calibration is None:  # checked before the (optional) quantizer package is needed
        raise ConfigError("int8 needs calibration images (preprocessed NCHW float32 batches)")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's LeafSpec deprecation, internal
        model = _weights_as_parameters(model.eval())
        graph = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
        prepared = prepare_pt2e(graph.module(), quantizer)
        seen = 0
        with torch.no_grad():
            for batch in calibration:
                for part in torch.split(batch, max_batch or len(batch)):
                    prepared(part.float())
                    seen += len(part)
        if not seen:
            raise ConfigError("int8 calibration got no images")
        converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    # The graph was captured from the eval-mode model, but GraphModules start with training=True
    # (and refuse .eval()); LiteRT's converter reads the flag and warns "converted in training
    # mode".
    for module in converted.modules():
        module.training = False
    return converted


def _weights_as_parameters(model: nn.Module) -> nn.Module:
    """A copy of `model` whose convolution weights held as buffers (VGNet's fixed Gaussian and
    edge kernels, lightnets.layers.FixedDepthwiseConv2d) are frozen parameters. prepare_pt2e
    folds a following BatchNorm into the conv and registers the folded weight as a parameter,
    which fails on a buffer of that name ("attribute 'weight' already exists"); the values and
    the graph are the same either way."""
    if not any("weight" in m._buffers for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    for module in model.modules():
        if "weight" in module._buffers:
            weight = module._buffers.pop("weight")
            module.weight = nn.Parameter(weight, requires_grad=False)
    return model


def int8_quantizer():
    """XNNPACK's PT2E quantizer: symmetric, per-channel weights, per-tensor activations."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def export(
    model: nn.Module,
    path: Path,
    example: Tensor,
    precision: str,
    calibration: Iterable[Tensor] | None,
    metadata: dict,
) -> Path:
    """Write `model` as an ExecuTorch program at `path` (.pte); returns `path`.

    Sets metadata["batch"] to the example's batch, the only one the program runs.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"executorch exports {', '.join(PRECISIONS)}, not {precision}")
    _require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = Path(path)
    check_writable(path)
    model = model.eval()
    if precision == "int8":
        pair, dynamic_shapes = batch_example(example, MAX_CALIBRATION_BATCH)
        model = pt2e_int8(
            model, pair, int8_quantizer(), calibration,
            dynamic_shapes=dynamic_shapes, max_batch=MAX_CALIBRATION_BATCH,
        )  # fmt: skip
    metadata["batch"] = int(example.shape[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.export.export(model, (example,))
        splits_to_slices(program.graph_module)
        edge = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()],
            constant_methods={METADATA_METHOD: json.dumps(metadata)},
        )
        buffer = edge.to_executorch().buffer
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer))
    return path


SPLITS = {
    torch.ops.aten.split_with_sizes.default,
    torch.ops.aten.split.Tensor,
    torch.ops.aten.chunk.default,
}


def splits_to_slices(graph_module: torch.fx.GraphModule) -> int:
    """Rewrite split/chunk + getitem in an exported (static-shape) graph as one aten.slice per
    used part; returns how many splits went. The parts are the same tensors (as copies)."""
    graph, count = graph_module.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in SPLITS:
            continue
        if not all(u.op == "call_function" and u.target is operator.getitem for u in node.users):
            continue
        source, size_arg = node.args[0], node.args[1]
        ndim = source.meta["val"].dim()
        dim = (node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)) % ndim
        length = int(source.meta["val"].shape[dim])
        if node.target == torch.ops.aten.split_with_sizes.default:
            sizes = list(size_arg)
        else:  # split(size) cuts parts of `size`; chunk(n) parts of ceil(length / n)
            step = (
                size_arg if node.target == torch.ops.aten.split.Tensor else -(-length // size_arg)
            )
            sizes = [min(step, length - start) for start in range(0, length, step)]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for user in list(node.users):
            i = user.args[1]
            with graph.inserting_before(user):
                part = graph.call_function(
                    torch.ops.aten.slice.Tensor, (source, dim, starts[i], starts[i] + sizes[i])
                )
            part.meta = dict(user.meta)
            user.replace_all_uses_with(part)
            graph.erase_node(user)
        graph.erase_node(node)
        count += 1
    graph.lint()
    graph_module.recompile()
    return count


def read_metadata(path: Path) -> dict:
    """The metadata embedded by `export` ({} for a .pte written elsewhere)."""
    _require_executorch()
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(Path(path))
    if METADATA_METHOD not in program.method_names:
        return {}
    return json.loads(program.load_method(METADATA_METHOD).execute([])[0])
