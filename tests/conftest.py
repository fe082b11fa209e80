"""Shared test fixtures: seeded random generators; sample and model fixtures live in
the ``_fixtures_*`` plugins below, one per pipeline stage."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

pytest_plugins = ["_fixtures_sim", "_fixtures_model", "_fixtures_templates"]


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy generator with a fixed seed."""
    return np.random.default_rng(1)


@pytest.fixture(autouse=True)
def _torch_seed():
    """Fork torch's RNG with a fixed seed around every test (as zuko does), if torch is loaded."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(1)
        yield


@pytest.fixture
def root():
    """PyROOT in batch mode with gRandom and RooRandom seeded."""
    pytest.importorskip("ROOT")
    from dyroot._optional import import_root

    r = import_root()
    r.gRandom.SetSeed(1)
    r.RooRandom.randomGenerator().SetSeed(1)
    return r
