"""An int8 part as it runs inside an int8 network: quantized tensors in and out.

onnxruntime's QDQ int8 file of a part alone starts with QuantizeLinear (float -> uint8) on its
input and ends with DequantizeLinear (uint8 -> float) on its output. Inside the network these
pairs sit between parts, where ORT fuses them into the neighbouring int8 kernels
(DQ -> Conv -> Q becomes QLinearConv), so the tensor that crosses a part boundary stays uint8.
`strip_boundaries` removes the input's Q and the output's DQ so that a part timed alone does
the work it does in the network, not a conversion the network never makes.
"""

from __future__ import annotations

import os


def strip_boundaries(path: str | os.PathLike, *, inputs: bool, outputs: bool) -> None:
    """Rewrite the QDQ file at `path`: with `inputs`, the graph input feeds the quantized tensor
    directly (its QuantizeLinear nodes removed, the input typed as their zero point); with
    `outputs`, a DequantizeLinear that makes the graph output is removed and its quantized
    input becomes the output. A boundary that is not such a node is left as it is."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    zero_points = {t.name: t.data_type for t in graph.initializer}
    if inputs:
        for graph_input in graph.input:
            quantizers = [n for n in graph.node if n.input[:1] == [graph_input.name]]
            if not quantizers or any(n.op_type != "QuantizeLinear" for n in quantizers):
                continue
            for q in quantizers:
                for node in graph.node:
                    node.input[:] = [
                        graph_input.name if i == q.output[0] else i for i in node.input
                    ]
                graph.node.remove(q)
            elem_type = zero_points.get(_zero_point(quantizers[0]), onnx.TensorProto.UINT8)
            graph_input.type.tensor_type.elem_type = elem_type
    if outputs:
        for graph_output in graph.output:
            makers = [n for n in graph.node if graph_output.name in n.output]
            if len(makers) != 1 or makers[0].op_type != "DequantizeLinear":
                continue
            dq = makers[0]
            elem_type = zero_points.get(_zero_point(dq), onnx.TensorProto.UINT8)
            graph.node.remove(dq)
            graph_output.name = dq.input[0]
            graph_output.type.tensor_type.elem_type = elem_type
    onnx.save(model, str(path))


def _zero_point(node) -> str:
    """The name of a Q/DQ node's zero point ("" when it has none: uint8 by ONNX's default)."""
    return node.input[2] if len(node.input) > 2 else ""
