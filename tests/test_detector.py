"""Tests of dyroot.detector: the q/pT smearing table and its application."""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.detector import DEFAULT_SMEARING, SmearingTable, smear_muons


def test_default_table_is_physics_md():
    t = DEFAULT_SMEARING
    assert t.eta_edges == (0.0, 1.05, 2.0, 2.7)
    assert t.r1 == (0.020, 0.023, 0.025)
    assert t.r2 == (2.5e-4, 2.8e-4, 3.0e-4)


def test_rows_edges_and_extension():
    t = DEFAULT_SMEARING
    eta = np.array([0.0, 1.0499, 1.05, -1.5, 1.9999, 2.0, 2.6999, 2.7, 3.0, -4.0])
    np.testing.assert_array_equal(t.row(eta), [0, 0, 1, 1, 1, 2, 2, 2, 2, 2])  # lo <= |eta| < hi; beyond: last row
    pt = np.full(eta.shape, 40.0)
    s = t.sigma(pt, eta)
    assert s[8] == s[6] == s[9]  # 2.7 and beyond use the 2.0-2.7 row exactly
    assert s[0] == pytest.approx(np.hypot(0.020, 2.5e-4 * 40), rel=1e-12)


def test_known_inputs_exact():
    # (q/pT)_reco = (q/pT)_true (1 + sigma z): pt_reco = pt / |1 + sigma z|, charge flips when 1 + sigma z < 0.
    pt = np.array([50.0, 50.0, 1000.0])
    eta = np.array([0.0, 2.5, 0.0])
    q = np.array([1, -1, 1])
    z = np.array([1.0, -2.0, -10.0])
    sig = DEFAULT_SMEARING.sigma(pt, eta)
    pt_r, q_r = smear_muons(pt, eta, q, None, z=z)
    np.testing.assert_allclose(pt_r, pt / np.abs(1 + sig * z), rtol=1e-14)
    assert 1 + sig[2] * z[2] < 0  # sigma(1 TeV) = 0.25: a -10 sigma draw crosses zero curvature
    np.testing.assert_array_equal(q_r, [1, -1, -1])
    assert q_r.dtype == np.int32


@pytest.mark.parametrize("row,eta", [(0, 0.5), (1, 1.5), (2, 2.3)])
def test_resolution_per_region_many_samples(row, eta):
    # Known input: 2e5 muons at fixed pT and eta; the fitted (ML Gaussian) width of the relative
    # curvature residual must equal the table's sqrt(r1^2 + (r2 pT)^2) within 1 % (stat. error 0.16 %).
    rng = np.random.default_rng(100 + row)
    n, pt0 = 200_000, 45.0
    pt = np.full(n, pt0)
    pt_r, q_r = smear_muons(pt, np.full(n, eta), np.ones(n, dtype=np.int32), rng)
    resid = pt / pt_r * q_r - 1.0  # (q/pT)_reco / (q/pT)_true - 1 = sigma z
    expect = np.hypot(DEFAULT_SMEARING.r1[row], DEFAULT_SMEARING.r2[row] * pt0)
    assert resid.std() == pytest.approx(expect, rel=0.01)
    assert abs(resid.mean()) < 5 * expect / np.sqrt(n)  # unbiased in curvature (5 sigma)


def test_seeded_generator_reproducible():
    pt, eta, q = np.array([30.0, 60.0]), np.array([0.1, 2.2]), np.array([1, -1])
    a = smear_muons(pt, eta, q, np.random.default_rng(7))
    b = smear_muons(pt, eta, q, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])


def test_custom_table_and_round_trip():
    t = SmearingTable.from_rows([(1.0, 0.01, 1e-4), (3.0, 0.03, 2e-4)])
    assert t.nrows == 2 and t.eta_edges == (0.0, 1.0, 3.0)
    assert SmearingTable.from_dict(t.to_dict()) == t
    assert SmearingTable.from_json('{"eta_edges": [0, 2.7], "r1": [0.02], "r2": [3e-4]}').nrows == 1


@pytest.mark.parametrize("kw,text", [
    ({"eta_edges": (0.0, 1.0), "r1": (0.02, 0.03), "r2": (1e-4, 1e-4)}, "len"),
    ({"eta_edges": (0.5, 1.0), "r1": (0.02,), "r2": (1e-4,)}, "start at 0"),
    ({"eta_edges": (0.0, 2.0, 1.0), "r1": (0.02, 0.02), "r2": (1e-4, 1e-4)}, "increase"),
    ({"eta_edges": (0.0, 1.0), "r1": (-0.02,), "r2": (1e-4,)}, ">= 0"),
])
def test_invalid_tables(kw, text):
    with pytest.raises(ValueError, match=text):
        SmearingTable(**kw)
    with pytest.raises(ValueError, match="missing the key"):
        SmearingTable.from_dict({"r1": [0.1]})
