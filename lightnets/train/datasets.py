"""Moved to lightnets.data.arrays (below training, where evaluation reads images too)."""

from lightnets.data.arrays import (  # noqa: F401
    cifar_root,
    load_cifar,
    load_digits,
    read_cifar_names,  # noqa: F401
)
