"""Session fixtures of the sim stage: small Pythia samples made once per test session.

Owned by the sim/io engineer; other stages may use them:

* ``ref_sample``: Path of a ``dyroot simulate`` file with the **training** preset
  (leading/subleading pT > 20/10 GeV, |eta| < 3.5, reco 105 <= mll < 170 GeV, generator
  window 95-500 GeV), 10,000 events, seed 11, truth pT branches on.
* ``ref_events``: ``read_events(ref_sample)`` plus ``mll_true``, ``mu1_pt_true``, ``mu2_pt_true``.
* ``zpeak_sample``: Path, analysis cuts (27/15 GeV, |eta| < 2.7), generator window
  70-110 GeV, every reco mass kept, 10,000 events, seed 12, truth pT on.
* ``ggh_sample``: Path, gg -> H -> mumu (mH = 125 GeV), analysis cuts, 3,000 events, seed 13.

Each takes a few seconds (jobs=1); a test that needs Pythia is skipped when
``pythia8mc`` is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _simulate(tmp_path_factory: pytest.TempPathFactory, name: str, n: int, seed: int, **cfg: Any) -> Path:
    pytest.importorskip("pythia8mc")
    from dyroot.simulate import preset_config, simulate

    preset = cfg.pop("preset", "analysis")
    path = tmp_path_factory.mktemp("sim") / f"{name}.root"
    simulate(path, n, preset_config(preset, **cfg), seed=seed, jobs=1)
    return path


@pytest.fixture(scope="session")
def ref_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training-preset Drell-Yan sample (10k events, truth pT), see the module docstring."""
    return _simulate(tmp_path_factory, "ref_training", 10_000, 11, preset="training", truth=True)


@pytest.fixture(scope="session")
def ref_events(ref_sample: Path) -> dict[str, np.ndarray]:
    """The columns of ``ref_sample`` as read by ``dyroot.io.read_events`` (with truth columns)."""
    from dyroot.io import read_events

    return read_events(ref_sample, extra=["mll_true", "mu1_pt_true", "mu2_pt_true"])


@pytest.fixture(scope="session")
def zpeak_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Drell-Yan around the Z peak (generator 70-110 GeV), analysis cuts, 10k events, truth pT."""
    return _simulate(tmp_path_factory, "zpeak", 10_000, 12, mass_window=(70.0, 110.0), truth=True)


@pytest.fixture(scope="session")
def ggh_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gg -> H -> mumu at mH = 125 GeV, analysis cuts, 3k events."""
    return _simulate(tmp_path_factory, "ggH", 3_000, 13, process="ggH")
