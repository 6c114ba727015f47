"""How each runtime runs an artifact: `LOADERS[runtime](path, threads)` is a function from an NCHW
float32 array to the logits, numpy in and numpy out.

No torch here: `lightnets verify` re-checks an artifact on a board, a phone image or a server with
only numpy and the runtime installed. (ExecuTorch's Python runtime takes torch tensors and
TorchScript is torch, so those two import it when they run.) The exporters, which need torch, are
one module per runtime beside this one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lightnets.cpu_class import onednn_cap, onednn_computes_bf16
from lightnets.deploy.sidecar import read_sidecar, sidecar_path
from lightnets.errors import ConfigError, import_optional

Run = Callable[[np.ndarray], np.ndarray]


def sidecar_precision(path: Path) -> str:
    """The precision the sidecar gives the artifact; fp32 for a file without one."""
    return read_sidecar(path).get("precision", "fp32") if sidecar_path(path).is_file() else "fp32"


def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    return path


# ------------------------------------------------------------------ ONNX Runtime


def ort_session(path: str | os.PathLike, threads: int | None = None, optimize: bool = True):
    """An onnxruntime CPU session; `threads` sets intra-op threads (None: ORT's default)."""
    ort = import_optional("onnxruntime", "onnx", "ONNX Runtime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_onnx(path: Path, threads: int | None = None) -> Run:
    session = ort_session(_check_file(path, "ONNX file"), threads)
    name, output = session.get_inputs()[0].name, session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([output], {name: x})[0]

    return run


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict (values are strings, lists as JSON)."""
    onnx = import_optional("onnx", "onnx", "reading ONNX metadata")
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


# ------------------------------------------------------------------ OpenVINO

# artifact precision -> (INFERENCE_PRECISION_HINT, the OPTIMIZATION_CAPABILITIES entry it needs)
_REDUCED = {"bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}


def inference_precision(
    precision: str, capabilities: Sequence[str] | None = None
) -> tuple[str, str | None]:
    """(INFERENCE_PRECISION_HINT, note) for an artifact's precision on a CPU with `capabilities`
    (default: this machine's OPTIMIZATION_CAPABILITIES): bf16 and f16 only where the CPU computes
    them, else f32 and a note saying so."""
    if precision not in _REDUCED:
        return "f32", None
    hint, needs = _REDUCED[precision]
    if capabilities is None:
        ov = import_optional("openvino", "openvino", "OpenVINO")
        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if needs in capabilities and onednn_computes_bf16():
        return hint, None
    if needs in capabilities:
        return "f32", f"ONEDNN_MAX_CPU_ISA={onednn_cap()} caps oneDNN below {precision}: ran f32"
    return (
        "f32",
        f"this CPU has no {precision} arithmetic (OpenVINO: {', '.join(capabilities)}): ran f32",
    )


def ir_metadata(path: str | os.PathLike) -> dict:
    """The lightnets metadata in an IR's rt_info (the file itself, so an IR checked under a
    staging name, before its sidecar exists, runs in its own precision); {} when absent."""
    ov = import_optional("openvino", "openvino", "OpenVINO")
    model = ov.Core().read_model(str(path))
    if not model.has_rt_info("lightnets"):
        return {}
    try:
        return json.loads(model.get_rt_info("lightnets").astype(str))
    except ValueError:
        return {}


def load_openvino(path: Path, threads: int | None = None) -> Run:
    """Compiled (LATENCY hint) for each new input shape, in the precision the IR was exported in
    where this CPU computes it. `run.inference_precision()` says what the last compile chose."""
    ov = import_optional("openvino", "openvino", "OpenVINO")
    path = _check_file(path, "OpenVINO IR")
    core = ov.Core()
    precision = ir_metadata(path).get("precision") or sidecar_precision(path)
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": inference_precision(precision)[0],
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled: dict[tuple[int, ...], tuple] = {}
    run_precision = {}  # read back from the last compiled model

    def run(x: np.ndarray) -> np.ndarray:
        shape = tuple(x.shape)
        if shape not in compiled:
            model = core.read_model(str(path))
            model.reshape(list(shape))
            network = core.compile_model(model, "CPU", config)
            compiled[shape] = (network.create_infer_request(), network.output(0))
            run_precision["value"] = network.get_property("INFERENCE_PRECISION_HINT").to_string()
        request, output = compiled[shape]
        return request.infer([x])[output].copy()  # the request reuses its output buffer

    run.inference_precision = lambda: run_precision.get("value")
    return run


# ------------------------------------------------------------------ ExecuTorch


def load_executorch(path: Path, threads: int | None = None) -> Run:
    """threads: size of ExecuTorch's XNNPACK thread pool, shared by every program in the
    process (the last load() decides). The program's batch is fixed: larger batches are split and
    the last part padded."""
    runtime = import_optional("executorch.runtime", "executorch", "ExecuTorch")
    import torch  # the runtime's Python API takes torch tensors

    path = _check_file(path, "ExecuTorch program")
    if threads:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)
    method = runtime.Runtime.get().load_program(path).load_method("forward")
    batch = method.metadata.input_tensor_meta(0).sizes()[0]

    def run(x: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        outs = []
        for part in torch.split(x, batch):
            pad = part[-1:].expand(batch - len(part), *part.shape[1:])
            outs.append(method.execute((torch.cat([part, pad]),))[0][: len(part)])
        return torch.cat(outs).numpy()

    return run


# ------------------------------------------------------------------ LiteRT


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input -> the tensor's integer type with its scale and zero point (int8 files)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.copy()
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def load_litert(path: Path, threads: int | None = None) -> Run:
    """XNNPACK on the CPU; threads: the interpreter's num_threads (None: LiteRT's default)."""
    interpreter_module = import_optional("ai_edge_litert.interpreter", "litert", "LiteRT")
    path = _check_file(path, "LiteRT model")
    interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
    (source,), (sink,) = interpreter.get_input_details(), interpreter.get_output_details()
    dynamic = source["shape_signature"][0] == -1
    fixed = int(source["shape"][0])
    shape = [None]

    def infer(x: np.ndarray) -> np.ndarray:
        if list(x.shape) != shape[0]:
            interpreter.resize_tensor_input(source["index"], list(x.shape))
            interpreter.allocate_tensors()
            shape[0] = list(x.shape)
        interpreter.set_tensor(source["index"], _quantize(x, source))
        interpreter.invoke()
        return _dequantize(interpreter.get_tensor(sink["index"]), sink)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if dynamic:
            return infer(x)
        outs = []
        for start in range(0, len(x), fixed):
            part = x[start : start + fixed]
            pad = np.repeat(part[-1:], fixed - len(part), axis=0)
            outs.append(infer(np.concatenate([part, pad]))[: len(part)])
        return np.concatenate(outs)

    return run


# ------------------------------------------------------------------ ncnn

NCNN_PARAM, NCNN_BIN = ".ncnn.param", ".ncnn.bin"


def bin_path(param: str | os.PathLike) -> Path:
    """`model.ncnn.param` -> `model.ncnn.bin` (the weights)."""
    param = Path(param)
    if not param.name.endswith(NCNN_PARAM):
        raise ConfigError(f"{param}: an ncnn model is named *{NCNN_PARAM}")
    return param.with_name(param.name[: -len(NCNN_PARAM)] + NCNN_BIN)


def blob_names(param: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of an ncnn .param: the Input layers' blobs, and the blobs no layer
    reads."""
    lines = Path(param).read_text().split("\n")
    if lines[0].strip() != "7767517":
        raise ConfigError(f"{param}: not an ncnn text .param (magic {lines[0].strip()!r})")
    inputs, produced, consumed = [], [], set()
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
        bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced += tops
        if kind == "Input":
            inputs += tops
    return inputs, [b for b in produced if b not in consumed]


def load_ncnn(path: Path, threads: int | None = None) -> Run:
    """The .ncnn.param at `path` with its .ncnn.bin, one image at a time. fp32 (no reduced
    storage or arithmetic) unless the sidecar says fp16."""
    ncnn = import_optional("ncnn", "ncnn", "ncnn")
    path = _check_file(path, "ncnn model file")
    weights = _check_file(bin_path(path), "ncnn model file")
    (source,), (sink,) = blob_names(path)
    net = ncnn.Net()
    if threads:
        net.opt.num_threads = threads
    if sidecar_precision(path) != "fp16":  # ncnn picks fp16/bf16 storage by default where it can
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
            setattr(net.opt, option, False)
        net.opt.use_bf16_storage = False
    if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
        raise ConfigError(f"ncnn cannot load {path} and {weights.name}")

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for image in np.ascontiguousarray(x, dtype=np.float32):
            with net.create_extractor() as extractor:
                extractor.input(source, ncnn.Mat(image).clone())
                status, out = extractor.extract(sink)
                if status != 0:
                    raise RuntimeError(f"ncnn failed on {path} (status {status})")
                outs.append(np.array(out).reshape(-1))
        return np.stack(outs)

    return run


# ------------------------------------------------------------------ TorchScript


def load_torchscript(path: Path, threads: int | None = None) -> Run:
    import torch

    module = torch.jit.load(str(_check_file(path, "TorchScript file"))).eval()
    if threads:
        torch.set_num_threads(threads)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


LOADERS: dict[str, Callable[[Path, int | None], Run]] = {
    "onnxruntime": load_onnx,
    "openvino": load_openvino,
    "executorch": load_executorch,
    "litert": load_litert,
    "ncnn": load_ncnn,
    "torchscript": load_torchscript,
}


def run_in_batches(run: Run, x: np.ndarray, batch: int | None) -> np.ndarray:
    """`run` over `x` in parts of `batch` (None: all at once), the last part padded for a
    fixed-batch artifact; float32 logits."""
    if batch is None:
        return np.asarray(run(np.ascontiguousarray(x, np.float32)), np.float32)
    outs = []
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        padded = np.concatenate([part, np.repeat(part[-1:], batch - len(part), axis=0)])
        outs.append(np.asarray(run(np.ascontiguousarray(padded, np.float32)))[: len(part)])
    return np.concatenate(outs).astype(np.float32)
