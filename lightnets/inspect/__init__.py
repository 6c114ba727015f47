"""Look inside a network the way the VGNet paper (arXiv:2207.10318) did: depthwise kernels and their
classes (blur, edge, identity), their spectra, and how alike neighbouring feature maps are.

Pure functions here; pictures come from `lightnets.inspect.plots` (the only module that imports
matplotlib).
"""

from lightnets.inspect.classify import (
    CLASSES,
    KernelClasses,
    chance_shares,
    classify_kernels,
    dc_gain,
    low_frequency_energy,
    null_threshold,
    templates,
)
from lightnets.inspect.features import capture_features, default_feature_layers, load_image
from lightnets.inspect.kernels import DepthwiseKernels, collect_depthwise_kernels
from lightnets.inspect.report import Report, feature_report, kernel_report
from lightnets.inspect.similarity import layer_similarity, linear_cka, similarity_matrices
from lightnets.inspect.summary import compare_lines, summary_lines
from lightnets.inspect.table import analyse, write_rows

__all__ = [
    "CLASSES",
    "DepthwiseKernels",
    "KernelClasses",
    "Report",
    "analyse",
    "capture_features",
    "chance_shares",
    "classify_kernels",
    "collect_depthwise_kernels",
    "compare_lines",
    "dc_gain",
    "default_feature_layers",
    "feature_report",
    "kernel_report",
    "layer_similarity",
    "linear_cka",
    "load_image",
    "low_frequency_energy",
    "null_threshold",
    "similarity_matrices",
    "summary_lines",
    "templates",
    "write_rows",
]
