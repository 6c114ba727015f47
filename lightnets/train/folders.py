"""Moved to lightnets.data.folders (below training, where evaluation reads images too)."""

from lightnets.data.folders import (  # noqa: F401  (re-exported)
    IMAGE_EXTENSIONS,
    class_dirs,
    probe_side,
    scan_folder,
    stratified_split,
)
