"""Doctest set-up: every doctest runs with torch's RNG forked and seeded (as zuko does)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed(doctest_namespace):  # type: ignore[no-untyped-def]
    doctest_namespace["np"] = np
    try:
        import torch
    except ModuleNotFoundError:
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
