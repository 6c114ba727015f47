"""Shared test helpers: build any registered model small and on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lightnets

FIXTURES = Path(__file__).parent / "fixtures"

# the search tests' fixtures (data, fake_measure, quick_timer, learnable), beside their helpers
pytest_plugins = ["_search_helpers"]

# Test tensors are tiny: one thread avoids OpenMP start-up and contention costs that made the
# suite 3-20x slower on 2 shared cores. Timing belongs in benchmarks/, not here.
torch.set_num_threads(1)


def build_for_test(name: str, batch: int = 2, **overrides):
    """Model `name` with 7 classes (so a hard-coded 1000 shows) and a smallest-size input."""
    torch.manual_seed(0)
    model = lightnets.create_model(name, num_classes=7, **overrides)
    size = model.card.min_input if model.card.embedding_dim else max(model.card.min_input, 32)
    x = torch.randn(batch, model.in_chans, size, size)
    return model, x


def expected_out(model) -> int:
    return model.card.embedding_dim or 7


@pytest.fixture(scope="session")
def reference_rows() -> list[dict]:
    return json.loads((FIXTURES / "models.json").read_text())


# Tests that load OpenVINO, NNCF or the edge runtimes into this process run last: after them,
# torch training in the same process crashed with SIGSEGV (seen twice in a fresh CI venv:
# test_deploy_matrix.py then test_train.py; each file passes alone). Cause not found. Tried
# 2026-12-03 without this reordering, on a 2-core AMD EPYC (AVX-512) with torch 2.13.0+cpu,
# openvino 2026.4.1, nncf 3.4.0, executorch 1.5.1, ai-edge-litert 2.3.0, onnxruntime 1.32.0:
# test_deploy_matrix, test_quantize, test_edge_runtimes then test_train (-m "not slow", 95
# passed), and test_deploy_matrix then test_train (72 passed): no crash, so nothing to bisect.
# Kept as a guard: it costs nothing, and the crash may depend on the CPU or the versions.
RUNTIME_FILES = ("test_deploy_matrix.py", "test_quantize.py", "test_edge_runtimes.py")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name in RUNTIME_FILES)  # stable: order kept otherwise
