"""What a network costs, measured: parameters, MACs, activation memory and latency.

Pure functions, usable from a notebook; `lightnets profile` (lightnets.commands.profile) is a thin
CLI over them. Only torch is imported here; numpy, onnxruntime, openvino and matplotlib are
imported by the function that needs them. One module per idea, each saying what its figure counts
(the CLI prints the same text as footnotes):

    counting.py   parameters (learned, fixed kernels), MACs and all ops (torch.utils.flop_counter)
    memory.py     peak activation memory of one inference forward
    timing.py     latency (torch.utils.benchmark) and noise detection
    table.py      profile_model -> ModelProfile, the profile table's columns and footnotes
    layers.py     per-block and per-operator cost of one model
    machine.py    CPU, threads and versions a timing depends on
    plot.py       the Pareto chart (matplotlib)

The runtimes that are timed (eager and every deployment target, lightnets.deploy.targets) are
built by lightnets.deploy.artifacts.make_runner, and the CPU helpers (threads, load, waiting
for an idle CPU) are lightnets.cpu's; both re-exported here.
"""

from lightnets.deploy.artifacts import Runner, check_runtime, eager_runner, make_runner
from lightnets.deploy.targets import TIMED_RUNTIMES
from lightnets.profiling.counting import (
    ELEMENTWISE_OPS,
    MAC_OPS,
    MacCount,
    ParamCount,
    count_macs,
    count_params,
    eval_mode,
    example_input,
    is_fixed_kernel,
)
from lightnets.profiling.layers import (
    LAYER_COLUMNS,
    OP_COLUMNS,
    LayerCost,
    LayerReport,
    OpCost,
    layer_profile,
    model_blocks,
    op_profile,
    profile_layers,
)
from lightnets.profiling.machine import cpu_model, machine_info, machine_line
from lightnets.profiling.memory import measure_memory
from lightnets.profiling.table import (
    COLUMNS,
    REPARAM_NOTE,
    ModelProfile,
    check_img_size,
    check_resolution,  # deprecated: check_img_size
    model_min_input,
    profile_columns,
    profile_model,
    profile_notes,
)
from lightnets.profiling.timing import (  # the CPU helpers among them: lightnets.cpu's
    MIN_BLOCKS_FOR_IQR,
    SPREAD_LIMIT,
    CpuLoad,
    Latency,
    contention,
    cpu_ticks,
    default_threads,
    measure_latency,
    torch_threads,
    wait_for_idle_cpu,
)

__all__ = [
    "COLUMNS",
    "TIMED_RUNTIMES",
    "ELEMENTWISE_OPS",
    "LAYER_COLUMNS",
    "MAC_OPS",
    "MIN_BLOCKS_FOR_IQR",
    "OP_COLUMNS",
    "REPARAM_NOTE",
    "SPREAD_LIMIT",
    "CpuLoad",
    "Latency",
    "LayerCost",
    "LayerReport",
    "MacCount",
    "ModelProfile",
    "OpCost",
    "ParamCount",
    "Runner",
    "check_img_size",
    "check_resolution",
    "check_runtime",
    "contention",
    "count_macs",
    "count_params",
    "cpu_model",
    "cpu_ticks",
    "default_threads",
    "eager_runner",
    "eval_mode",
    "example_input",
    "is_fixed_kernel",
    "layer_profile",
    "machine_info",
    "machine_line",
    "make_runner",
    "measure_latency",
    "measure_memory",
    "model_blocks",
    "model_min_input",
    "op_profile",
    "profile_columns",
    "profile_layers",
    "profile_model",
    "profile_notes",
    "torch_threads",
    "wait_for_idle_cpu",
]
