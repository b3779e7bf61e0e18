"""A converted folder of many patches for the tests that need more than the six sample patches: the
real v1.0 S1/S2 sample pairs hard-linked under distinct names (``bench/replicated.py``) with
release-like texts (about twenty per patch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def convert_replicated(work: Path, n: int) -> Path:
    spec = importlib.util.spec_from_file_location("bench_replicated", BENCH / "replicated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, _, _ = module.convert_replicated(work, n, rows_per_shard=100)
    return out
