"""Tests of dyroot.features: the dimuon variables and their inverse."""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.features import (
    DEFAULT_CATEGORIES,
    Binning,
    Selection,
    dimuon_from_muons,
    muons_from_dimuon,
)


def _random_dimuons(rng, n=20000):
    return dict(
        mll=rng.uniform(60, 200, n), ptll=rng.exponential(20, n), yll=rng.uniform(-2.5, 2.5, n),
        costheta=rng.uniform(-1, 1, n), phi_cs=rng.uniform(-np.pi, np.pi, n), phill=rng.uniform(-np.pi, np.pi, n),
    )


def test_round_trip(rng):
    d = _random_dimuons(rng)
    mu = muons_from_dimuon(**d)
    back = dimuon_from_muons(*(mu[k] for k in ("mu1_pt", "mu1_eta", "mu1_phi", "mu1_charge",
                                                "mu2_pt", "mu2_eta", "mu2_phi", "mu2_charge")))
    for k, v in d.items():
        diff = back[k] - v
        if k.startswith("phi"):
            diff = (diff + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(diff).max() < 1e-6, k  # float64 round trip, GeV or rad
    assert np.all(mu["mu1_pt"] >= mu["mu2_pt"])
    assert np.all(mu["mu1_charge"] * mu["mu2_charge"] == -1)


def test_torch_matches_numpy(rng):
    torch = pytest.importorskip("torch")
    d = _random_dimuons(rng, 2000)
    a = muons_from_dimuon(**d)
    b = muons_from_dimuon(**{k: torch.from_numpy(v) for k, v in d.items()})
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k], rtol=0, atol=1e-9)


def test_back_to_back_at_rest_frame():
    # Back-to-back muons (dimuon at rest): costheta is the polar cosine of the negative muon, tanh(eta).
    d = dimuon_from_muons(np.array([40.0]), np.array([3.0]), np.array([0.3]), np.array([-1]),
                          np.array([40.0]), np.array([-3.0]), np.array([0.3 + np.pi]), np.array([1]))
    assert abs(d["ptll"][0]) < 1e-9
    assert d["costheta"][0] == pytest.approx(np.tanh(3.0), abs=1e-9)
    assert d["phi_cs"][0] == pytest.approx(0.3, abs=1e-9)
    assert d["yll"][0] == pytest.approx(0.0, abs=1e-9)


def test_selection_and_categories(rng):
    d = _random_dimuons(rng)
    ev = {**d, **muons_from_dimuon(**d)}
    sel = Selection()
    mask = sel.mask(ev)
    assert np.all(ev["mu1_pt"][mask] > 27) and np.all(ev["mu2_pt"][mask] > 15)
    assert np.all((ev["mll"][mask] >= 110) & (ev["mll"][mask] < 160))
    cat = DEFAULT_CATEGORIES.assign(ev)
    assert set(np.unique(cat)) == set(range(6))  # the six categories cover everything
    central = np.maximum(abs(ev["mu1_eta"]), abs(ev["mu2_eta"])) < 1
    np.testing.assert_array_equal(cat < 3, central)
    assert Selection.from_dict(sel.to_dict()) == sel
    scheme = type(DEFAULT_CATEGORIES).from_list(DEFAULT_CATEGORIES.to_list())
    assert scheme == DEFAULT_CATEGORIES


def test_binning_must_divide_range():
    assert Binning(110, 160, 0.5).nbins == 100
    with pytest.raises(ValueError, match="does not divide"):
        Binning(110, 160, 0.3).nbins
