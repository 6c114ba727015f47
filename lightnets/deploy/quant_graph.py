"""`--keep-float`: the layer kinds a quantizer may leave in float, one view of an ONNX graph and
an OpenVINO model that finds them (SE gates, activations, depthwise convs, first, last), and the
`QuantReport` every quantizer returns (lightnets.deploy.quantize, lightnets.deploy.quantize_nncf).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lightnets.errors import UnknownNameError, import_optional

KEEP_FLOAT = ("se", "act", "dw", "dw-large", "first", "last")


def parse_keep_float(kinds: str | Iterable[str] | None) -> tuple[str, ...]:
    """ "se,act" or ["se", "act"] -> ("se", "act"); UnknownNameError with close matches."""
    if kinds is None:
        return ()
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    out = []
    for kind in (k.strip() for k in kinds):
        if not kind:
            continue
        if kind not in KEEP_FLOAT:
            close = difflib.get_close_matches(kind, KEEP_FLOAT, n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"unknown --keep-float kind {kind!r}{hint} (known: {', '.join(KEEP_FLOAT)})"
            )
        if kind not in out:
            out.append(kind)
    return tuple(out)


# ------------------------------------------------------------------ what a quantizer reports


@dataclass
class QuantReport:
    """What a quantizer left in float, by kind, and how it was asked to quantize."""

    runtime: str
    kept_float: dict[str, list[str]] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def summary(self) -> str:
        kept = ", ".join(f"{k} {len(v)} nodes" for k, v in self.kept_float.items()) or "nothing"
        options = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.runtime} int8 ({options}); kept in float: {kept}"

    def to_dict(self) -> dict:
        return {
            "kept_float": {k: len(v) for k, v in self.kept_float.items()},
            "options": self.options,
        }


def require_module(module: str, extra: str):
    """`module` for int8 quantization, or MissingDependencyError naming `extra`."""
    return import_optional(module, extra, "int8 quantization")


# ------------------------------------------------------------------ one view of two graphs


@dataclass(frozen=True)
class GraphNode:
    """A compute node: op normalised across runtimes, producers of its non-constant inputs."""

    name: str
    op: str  # conv, linear, sigmoid, hardsigmoid, hardswish (any x * gate(x) op), mul, add,
    # pool, relu, other
    inputs: tuple[str, ...]  # names of the nodes producing its inputs (graph inputs left out)
    kernel: int = 0  # convs: the largest kernel side
    depthwise: bool = False


_ONNX_OPS = {
    "Conv": "conv",
    "Gemm": "linear",
    "MatMul": "linear",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish",
    "Mul": "mul",
    "Add": "add",
    "GlobalAveragePool": "pool",
    "ReduceMean": "pool",
    "Relu": "relu",
    "Clip": "relu",
}


def onnx_input_name(model) -> str:
    """The name of an onnx.ModelProto's (first) input, the one the images are fed to."""
    constants = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in constants)


def onnx_graph(model) -> list[GraphNode]:
    """An onnx.ModelProto's nodes in file (topological) order."""
    import onnx

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node.name for node in graph.node for out in node.output}
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        op = _ONNX_OPS.get(node.op_type, "other")
        kernel, depthwise = 0, False
        if op == "conv" and node.input[1] in weights:
            dims = list(weights[node.input[1]].dims)  # (C_out, C_in / group, kH, kW)
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            group = attrs.get("group", 1)
            kernel = max(dims[2:]) if len(dims) > 2 else 1
            depthwise = group > 1 and dims[1] == 1 and dims[0] == group
        inputs = tuple(producer[i] for i in node.input if i in producer)
        nodes.append(GraphNode(node.name, op, inputs, kernel, depthwise))
    return nodes


_OPENVINO_OPS = {
    "Convolution": "conv",
    "GroupConvolution": "conv",
    "MatMul": "linear",
    "Sigmoid": "sigmoid",
    "HSigmoid": "hardsigmoid",
    "HSwish": "hardswish",
    "Swish": "hardswish",  # OpenVINO's conversion fuses x * sigmoid(x) into one Swish op
    "Multiply": "mul",
    "Add": "add",
    "ReduceMean": "pool",
    "Relu": "relu",
    "Clamp": "relu",
}
# ops that only carry constants (weights, their fp16 decompression, shapes) in an OpenVINO graph
_OPENVINO_CONSTANT = ("Constant", "Convert", "Parameter")


def openvino_graph(model) -> list[GraphNode]:
    """An openvino.Model's compute nodes in topological order (constants and converts left out;
    a conv's bias Add stays a separate node, as in the OpenVINO graph)."""

    def is_constant(op) -> bool:
        if op.get_type_name() == "Constant":
            return True
        if op.get_type_name() == "Convert":  # decompression of fp16 weights
            return all(is_constant(i.get_node()) for i in op.input_values())
        return False

    nodes = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in _OPENVINO_CONSTANT and (kind != "Convert" or is_constant(op)):
            continue
        if kind in ("Result",):
            continue
        name = _OPENVINO_OPS.get(kind, "other")
        inputs = tuple(
            v.get_node().get_friendly_name()
            for v in op.input_values()
            if not is_constant(v.get_node()) and v.get_node().get_type_name() != "Parameter"
        )
        kernel, depthwise = 0, False
        if name == "conv":
            shape = list(op.input_value(1).get_partial_shape().to_shape())
            kernel = max(shape[-2:])
            # GroupConvolution weights: (groups, C_out / g, C_in / g, kH, kW)
            depthwise = kind == "GroupConvolution" and shape[1] == 1 and shape[2] == 1
        nodes.append(GraphNode(op.get_friendly_name(), name, inputs, kernel, depthwise))
    return nodes


def float_nodes(nodes: Sequence[GraphNode], kinds: Iterable[str]) -> dict[str, list[str]]:
    """kind -> names of the nodes of that kind, for each kind in `kinds` (see KEEP_FLOAT)."""
    kinds = parse_keep_float(list(kinds))
    by_name = {n.name: n for n in nodes}
    consumers: dict[str, list[GraphNode]] = {}
    for node in nodes:
        for i in node.inputs:
            consumers.setdefault(i, []).append(node)
    se = _squeeze_excite_nodes(nodes, by_name)
    out: dict[str, list[str]] = {}
    weighted = [n for n in nodes if n.op in ("conv", "linear")]
    for kind in kinds:
        if kind == "se":
            names = [n.name for n in nodes if n.name in se]
        elif kind == "act":
            names = _activation_nodes(nodes, consumers, se)
        elif kind == "dw":
            names = [n.name for n in nodes if n.depthwise]
        elif kind == "dw-large":
            names = [n.name for n in nodes if n.depthwise and n.kernel > 3]
        elif kind == "first":
            names = [weighted[0].name] if weighted else []
        else:  # last
            names = [weighted[-1].name] if weighted else []
        out[kind] = names
    return out


def _activation_nodes(nodes, consumers, se: set[str]) -> list[str]:
    names = []
    for node in nodes:
        if node.name in se:
            continue
        if node.op == "hardswish":
            names.append(node.name)
        elif node.op in ("sigmoid", "hardsigmoid"):
            names.append(node.name)
            # swish / hard-swish written as x * sigmoid(x): the product belongs to the activation
            for mul in consumers.get(node.name, []):
                if mul.op == "mul" and set(node.inputs) <= set(mul.inputs) and mul.name not in se:
                    names.append(mul.name)
    return list(dict.fromkeys(names))


def _squeeze_excite_nodes(nodes, by_name, depth: int = 12) -> set[str]:
    """Nodes of every x * gate(pool(x)) block: the product, the pool and all nodes between."""
    found: set[str] = set()
    for mul in nodes:
        if mul.op != "mul" or len(mul.inputs) != 2:
            continue
        for x, gate in (mul.inputs, mul.inputs[::-1]):
            ancestors, frontier = set(), [gate]
            for _ in range(depth):  # the gate's ancestors, a few nodes deep
                frontier = [p for p in frontier if p in by_name and p not in ancestors]
                ancestors.update(frontier)
                frontier = [i for p in frontier for i in by_name[p].inputs]
            pools = [p for p in ancestors if by_name[p].op == "pool" and by_name[p].inputs == (x,)]
            if not pools:
                continue
            # the nodes between a pool and the product: ancestors of the gate fed by the pool
            between, changed = set(pools), True
            while changed:
                changed = False
                for name in ancestors - between:
                    if any(i in between for i in by_name[name].inputs):
                        between.add(name)
                        changed = True
            found |= between | {mul.name}
            break
    return found
