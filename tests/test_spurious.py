"""Tests of dyroot.spurious: criteria, choice, chi2 and deltaS formula (pure, no ROOT)."""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.exceptions import ConfigError
from dyroot.spurious import (
    Criteria,
    FunctionScan,
    MassPoint,
    chi2_test,
    choose,
    delta_s_formula,
    evaluate,
    format_table,
)


def _scan(name: str, n_params: int, sigs, ds=100.0, mc=5.0, p=0.5, sexp=None, ok=True, bkg_ok=True):
    pts = [MassPoint(120.0 + i, n_sig=s, n_sig_error=ds, delta_s=ds, delta_mc=mc, s_expected=sexp, ok=ok)
           for i, s in enumerate(sigs)]
    return FunctionScan("cat", name, n_params, points=pts, chi2=500.0, ndf=495, chi2_pvalue=p, background_ok=bkg_ok)


def test_signal_criterion_strict_and_relaxed():
    s = _scan("F", 2, [5.0, -25.0, 12.0], ds=100.0, mc=5.0)
    strict = evaluate(s, Criteria(relax_mc=False))
    assert not strict.passed and strict.z_spur == pytest.approx(0.25) and strict.s_spur == 25.0
    assert strict.mh_at_max == 121.0 and "spurious signal" in strict.reasons[0]
    relaxed = evaluate(s, Criteria())  # max(0, 25 - 2*5)/100 = 0.15 < 0.2
    assert relaxed.passed and relaxed.z_relaxed == pytest.approx(0.15)
    assert not evaluate(s, Criteria(mc_sigmas=0.5)).passed  # (25 - 2.5)/100 = 0.225
    assert evaluate(s, Criteria(max_z_spur=0.3, relax_mc=False)).passed


def test_s_over_sexp_alternative_and_ratio():
    s = _scan("F", 2, [30.0], ds=100.0, mc=0.0, sexp=400.0)
    assert not evaluate(s, Criteria()).passed
    v = evaluate(s, Criteria(max_s_over_sexp=0.1))  # 30/400 = 0.075
    assert v.passed and v.s_over_sexp == pytest.approx(0.075)
    assert evaluate(_scan("F", 2, [30.0], ds=100.0, mc=0.0), Criteria(max_s_over_sexp=0.1)).s_over_sexp is None


def test_chi2_and_failed_fits_fail():
    low_p = evaluate(_scan("F", 2, [1.0], p=0.004), Criteria())
    assert not low_p.passed and "chi2 p-value" in low_p.reasons[0]
    assert evaluate(_scan("F", 2, [1.0], p=0.004), Criteria(min_chi2_pvalue=0.001)).passed
    failed = _scan("F", 2, [1.0, 2.0])
    failed.points[1].ok, failed.points[1].message = False, "migrad status 3"
    v = evaluate(failed, Criteria())
    assert not v.passed and not v.fits_ok and "S+B fit(s) failed" in v.reasons[0]
    nob = evaluate(_scan("F", 2, [1.0], bkg_ok=False), Criteria())
    assert not nob.passed and "background-only fit failed" in nob.reasons[0]


def test_choose_fewest_parameters_then_smallest_z():
    vs = [evaluate(s, Criteria()) for s in (
        _scan("Big", 5, [1.0]), _scan("TooSimple", 1, [90.0]), _scan("A", 3, [15.0]), _scan("B", 3, [2.0]),
        _scan("C", 2, [1.0], p=0.001))]
    best = choose(vs)
    assert best is not None and best.function == "B"  # A and B have 3 parameters; B has the smaller Z
    assert choose([v for v in vs if v.function in ("TooSimple", "C")]) is None
    table = format_table(vs, {"cat": "B"})
    assert "CHOSEN" in table and table.count("\n") == len(vs) + 1
    assert "no function passes in: other" in format_table(vs, {"cat": "B", "other": None})


def test_criteria_validation():
    with pytest.raises(ConfigError):
        Criteria(max_z_spur=0.0)
    with pytest.raises(ConfigError):
        Criteria(max_s_over_sexp=-1.0)


def test_chi2_known_answers():
    c, ndf, p = chi2_test([110.0, 90.0, 100.0], [110.0, 90.0, 100.0], [100.0, 100.0, 100.0], 1)
    assert (c, ndf) == (pytest.approx(2.0), 2) and p == pytest.approx(np.exp(-1.0))  # chi2 with 2 dof: e^{-x/2}
    # weighted histogram (k = 4): the variance is k * nu, so the chi2 shrinks by 4
    c4, _, _ = chi2_test([440.0, 360.0, 400.0], [1760.0, 1440.0, 1600.0], [400.0, 400.0, 400.0], 1)
    assert c4 == pytest.approx(2.0)
    # merging: bins below min_expected are grouped from the left
    c2, ndf2, _ = chi2_test([1.0] * 10, [1.0] * 10, [1.0] * 10, 0, min_expected=5.0)
    assert ndf2 == 2 and c2 == 0.0
    with pytest.raises(ConfigError, match="groups"):
        chi2_test([1.0] * 4, [1.0] * 4, [1.0] * 4, 1, min_expected=5.0)


def test_chi2_pvalues_of_poisson_toys_are_flat(rng):
    """Known answer: with the true expectation, p-values are uniform (KS test, p > 0.01)."""
    from scipy.stats import kstest

    nu = 50.0 * np.exp(-np.linspace(0.0, 2.0, 200))
    pv = np.array([chi2_test(n, n, nu, 0, min_expected=5.0)[2]
                   for n in rng.poisson(nu, size=(400, nu.size)).astype(float)])
    assert kstest(pv, "uniform").pvalue > 0.01  # seeded: deterministic
    assert abs(pv.mean() - 0.5) < 0.05  # 400 toys: sd of the mean 0.014


def test_delta_s_formula():
    s = np.array([0.25, 0.5, 0.25])
    b = np.array([100.0, 100.0, 100.0])
    assert delta_s_formula(s, b) == pytest.approx((0.375 / 100.0) ** -0.5)
    assert delta_s_formula(s, 4 * b) == pytest.approx(2 * delta_s_formula(s, b))  # scales like sqrt(B)


def test_scan_round_trip():
    s = _scan("F", 2, [1.0, 2.0])
    back = FunctionScan.from_dict(s.to_dict())
    assert back == s
    np.testing.assert_array_equal(back.arrays()["n_sig"], [1.0, 2.0])
