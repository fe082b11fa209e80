"""Tests of dyroot.fit: RooFit binned S+B fits with bin integration, robust Minuit2, workspace output."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ROOT")

from dyroot.exceptions import FitError, OutputExistsError  # noqa: E402
from dyroot.fit import FitOptions, TemplateFit, WorkspaceCategory, histogram_arrays, write_workspace  # noqa: E402
from dyroot.functions import dy_core, gauss_legendre_nodes, get_function  # noqa: E402
from dyroot.signal import DSCB, SignalModel, dscb_bin_fractions  # noqa: E402
from dyroot.spurious import delta_s_formula  # noqa: E402

pytestmark = pytest.mark.root

EDGES = np.linspace(110.0, 160.0, 501)
SHAPE = DSCB(124.9, 2.5, 1.5, 3.0, 1.6, 10.0)
EPOLY3 = {"a1": -1.5, "a2": 0.2, "a3": -0.05}


def exact_bins(name: str, values: dict, total: float, resolution: float | None = None) -> np.ndarray:
    """Bin integrals of a catalogue function by 12-point Gauss-Legendre per bin, scaled to ``total``."""
    f = get_function(name)
    xg, wg = np.polynomial.legendre.leggauss(12)
    c, h = 0.5 * (EDGES[1:] + EDGES[:-1]), np.diff(EDGES)
    pts = c[:, None] + 0.5 * h[:, None] * xg[None, :]
    core = dy_core(pts.ravel(), resolution).reshape(pts.shape) if resolution else None
    v = 0.5 * np.sum(wg * f.evaluate(pts, values, core=core), axis=1) * h
    return v * total / v.sum()


def core_nodes(resolution: float):
    lo, hi = gauss_legendre_nodes(EDGES)
    return dy_core(lo, resolution), dy_core(hi, resolution)


@pytest.mark.parametrize("name,values,res", [("Epoly3", EPOLY3, None), ("CoreEpoly2", {"a1": -1.0, "a2": 0.1}, 0.02)])
def test_no_bias_at_template_scale(name, values, res):
    """Bin-centre bias test: an exact 1e9-event template of F, fitted with F, gives zero signal.

    The two-node bin average removes what evaluation at bin centres leaves (~0.005 sigma
    here even with the likelihood normalised to the bin sum; RooFit's default, normalised
    to the integral, is worse: stack-notes)."""
    mu = exact_bins(name, values, 1e9, res)
    nodes = core_nodes(res) if res else None
    z = {}
    for integrate in (True, False):
        tf = TemplateFit(EDGES, mu, mu, get_function(name), SHAPE, core_nodes=nodes,
                         options=FitOptions(bin_integration=integrate), tag=f"bias_{name}_{integrate}")
        b = tf.fit_background()
        assert b.ok
        if integrate:
            assert abs(b.nll) < 1e-3  # offset per bin: a perfect fit has NLL 0
        z[integrate] = []
        for mh in (121.0, 125.0, 129.0):
            r = tf.fit_signal(DSCB(mh - 0.1, 2.5, 1.5, 3.0, 1.6, 10.0))
            z[integrate].append(r.values["n_sig"] / r.errors["n_sig"])
    assert max(abs(x) for x in z[True]) < 2e-4  # unbiased (measured < 1e-4 sigma)
    assert max(abs(x) for x in z[False]) > 1e-3  # bin centres: measurable (measured 0.003-0.006 sigma)


def test_predictions_match_roofit_and_core_formula():
    """numpy predictions = RooFit's model: the Asimov likelihood is zero at the fitted point, and
    the formula (incl. the core RooHistFuncs at the nodes) agrees bin by bin."""
    import ROOT

    res = 0.025
    mu = exact_bins("CoreEpoly2", {"a1": -0.9, "a2": 0.08}, 1e6, res)
    tf = TemplateFit(EDGES, mu, mu, get_function("CoreEpoly2"), SHAPE, core_nodes=core_nodes(res), tag="pred")
    tf.fit_background()
    c = 0.5 * (EDGES[1:] + EDGES[:-1])
    roo = []
    for x in c[::25]:
        tf.m.setVal(float(x))
        roo.append(tf.bkg_func.getVal())
    np.testing.assert_allclose(roo, tf.bkg_average(tf.values)[::25], rtol=1e-12)
    assert tf.asimov_delta_s(SHAPE) > 0
    assert abs(tf._asimov[2].getVal()) < 1e-6  # the Asimov NLL (bin offset) at its own truth
    assert isinstance(tf.bkg_func, ROOT.RooFormulaVar)


def test_signal_injection_and_pulls(rng):
    """k injected signal events at 125 GeV are recovered: exactly on an Asimov template, and
    with unit pulls on Poisson toys."""
    b = exact_bins("Epoly3", EPOLY3, 1e6)
    frac = dscb_bin_fractions(SHAPE, EDGES)
    tf0 = TemplateFit(EDGES, b, b, get_function("Epoly3"), SHAPE, tag="inj0")
    tf0.fit_background()
    k = 3.0 * tf0.asimov_delta_s(SHAPE)
    data = b + k * frac
    tf = TemplateFit(EDGES, data, data, get_function("Epoly3"), SHAPE, tag="inj")
    tf.fit_background()
    r = tf.fit_signal(SHAPE)
    assert r.values["n_sig"] == pytest.approx(k, abs=0.01 * r.errors["n_sig"])
    pulls = []
    for i in range(40):
        toy = rng.poisson(data).astype(np.float64)
        t = TemplateFit(EDGES, toy, toy, get_function("Epoly3"), SHAPE, tag=f"toy{i}")
        t.fit_background()
        rr = t.fit_signal(SHAPE)
        pulls.append((rr.values["n_sig"] - k) / rr.errors["n_sig"])
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.5  # 40 toys: sd of the mean 0.16
    assert 0.7 < pulls.std(ddof=1) < 1.3  # sd of the sd ~0.11


def test_delta_s_matches_fisher_information_and_formula():
    """Asimov HESSE = the inverse Fisher information computed independently in numpy."""
    b = exact_bins("Epoly3", EPOLY3, 1e6)
    tf = TemplateFit(EDGES, b, b, get_function("Epoly3"), SHAPE, tag="fisher")
    tf.fit_background()
    ds = tf.asimov_delta_s(SHAPE)
    f, frac = get_function("Epoly3"), dscb_bin_fractions(SHAPE, EDGES)

    def nu(theta):
        shape = f.bin_average(EDGES, dict(zip(f.param_names, theta[2:])))
        return theta[0] * frac + theta[1] * shape / shape.sum()

    theta = np.array([0.0, b.sum(), *[tf.values[n] for n in f.param_names]])
    jac = np.empty((b.size, theta.size))
    for j in range(theta.size):
        step = 1e-4 * max(1.0, abs(theta[j]))
        up, dn = theta.copy(), theta.copy()
        up[j] += step
        dn[j] -= step
        jac[:, j] = (nu(up) - nu(dn)) / (2 * step)
    cov = np.linalg.inv(jac.T @ (jac / nu(theta)[:, None]))
    assert ds == pytest.approx(np.sqrt(cov[0, 0]), rel=2e-3)  # measured 1e-4
    assert ds > delta_s_formula(frac, b)  # the formula ignores the background parameters


def test_delta_mc_scaling_with_raw_template():
    """The scaled fit's HESSE error is sqrt(k) times the raw one and the raw template's own error in
    data units is k times it: Delta_MC = sqrt(k) sigma_H (scan.py)."""
    raw = exact_bins("Epoly3", EPOLY3, 4e7)
    k = 0.025
    a = TemplateFit(EDGES, raw, raw, get_function("Epoly3"), SHAPE, tag="raw")
    s = TemplateFit(EDGES, raw * k, raw * k * k, get_function("Epoly3"), SHAPE, tag="scaled")
    for t in (a, s):
        t.fit_background()
    ra, rs = a.fit_signal(SHAPE), s.fit_signal(SHAPE)
    assert rs.values["n_sig"] == pytest.approx(k * ra.values["n_sig"], abs=1e-3 * rs.errors["n_sig"])
    assert rs.errors["n_sig"] == pytest.approx(np.sqrt(k) * ra.errors["n_sig"], rel=2e-3)
    assert np.sqrt(k) * rs.errors["n_sig"] == pytest.approx(k * ra.errors["n_sig"], rel=2e-3)


def test_chi2_pvalues_of_fitted_toys_are_flat(rng):
    """Known answer: background-only fits of the true function to Poisson toys give uniform p-values."""
    from scipy.stats import kstest

    from dyroot.spurious import chi2_test

    mu = exact_bins("Epoly2", {"a1": -1.2, "a2": 0.15}, 1e5)
    pv = []
    for i in range(80):
        toy = rng.poisson(mu).astype(np.float64)
        t = TemplateFit(EDGES, toy, toy, get_function("Epoly2"), SHAPE, tag=f"chi{i}")
        t.fit_background()
        pv.append(chi2_test(toy, toy, t.predictions()[1], 3)[2])
    assert kstest(pv, "uniform").pvalue > 0.01  # seeded toys: deterministic


def test_failed_fit_raises_with_its_result():
    """A function that is NaN for every parameter value: every attempt fails, the error carries the result."""
    from dyroot.functions import BackgroundFunction, Parameter

    bad = BackgroundFunction("AlwaysNaN", "sqrt(b - 10)*exp(t)", (Parameter("b", 0.0, -5.0, 5.0),))
    b = exact_bins("Epoly3", EPOLY3, 1e5)
    tf = TemplateFit(EDGES, b, b, bad, SHAPE, options=FitOptions(max_attempts=2), tag="fail")
    with pytest.raises(FitError, match="failed after 2 attempts") as err:
        tf.fit_background()
    assert err.value.result is not None and not err.value.result.ok and err.value.result.status != 0
    assert err.value.result.attempts == 2


def test_histogram_arrays_from_th1_and_datahist():
    import ROOT

    h = ROOT.TH1D("h_arrays", "", 5, 110.0, 160.0)
    h.Sumw2()
    for i, v in enumerate([4.0, 3.0, 2.0, 1.0, 1.0]):
        h.SetBinContent(i + 1, v)
        h.SetBinError(i + 1, np.sqrt(2 * v))
    e, c, w2 = histogram_arrays(h)
    np.testing.assert_allclose(e, np.linspace(110, 160, 6))
    np.testing.assert_allclose(w2, 2 * c)
    x = ROOT.RooRealVar("x_arrays", "", 110.0, 160.0)
    dh = ROOT.RooDataHist("dh_arrays", "", [x], h)
    e2, c2, w22 = histogram_arrays(dh)
    np.testing.assert_allclose(e2, e)
    np.testing.assert_allclose(c2, c)
    np.testing.assert_allclose(w22, w2)


def test_workspace_and_hs3_json(tmp_path):
    import ROOT

    res = 0.02
    mu = exact_bins("CoreEpoly2", {"a1": -1.0, "a2": 0.1}, 1e5, res)
    grid = np.round(np.arange(110.0, 160.005, 0.01), 6)
    cats = [WorkspaceCategory("c1", EDGES, mu, mu, get_function("CoreEpoly2"), {"a1": -1.0, "a2": 0.1}, 1e5,
                              (grid, dy_core(grid, res))),
            WorkspaceCategory("c2", EDGES, mu, mu, get_function("Epoly2"), {"a1": -1.0, "a2": 0.1}, 1e5)]
    sig = SignalModel.default(["c1", "c2"])
    path, jpath = write_workspace(tmp_path / "ws.root", cats, sig, json_path=tmp_path / "ws.json", summary_json="{}")
    f = ROOT.TFile.Open(str(path))
    ws = f.Get("dyroot")
    for c in ("c1", "c2"):
        for name in (f"model_{c}", f"bkg_{c}", f"sig_{c}"):
            assert ws.pdf(name), name
        assert ws.data(f"data_{c}").sumEntries() == pytest.approx(1e5, rel=1e-9)
    # the stored background has the catalogue's shape (ratio of two masses)
    m = ws.var("mll_c2")
    bkg = ws.pdf("bkg_c2")
    vals = []
    for x in (115.0, 150.0):
        m.setVal(x)
        vals.append(bkg.getVal())
    ref = get_function("Epoly2").evaluate(np.array([115.0, 150.0]), {"a1": -1.0, "a2": 0.1})
    assert vals[0] / vals[1] == pytest.approx(ref[0] / ref[1], rel=1e-9)
    # the core in the workspace: a 0.01 GeV table, linear interpolation, matches the formula
    mc, bc = ws.var("mll_c1"), ws.pdf("bkg_c1")
    xs = np.array([111.23, 124.87, 158.41])
    got = []
    for x in xs:
        mc.setVal(float(x))
        got.append(bc.getVal())
    want = get_function("CoreEpoly2").evaluate(xs, {"a1": -1.0, "a2": 0.1}, core=dy_core(xs, res))
    np.testing.assert_allclose(np.array(got) / got[1], want / want[1], rtol=2e-6)  # interpolation error ~1e-7
    ws.var("MH").setVal(127.0)
    assert ws.function("c1_sig_mean").getVal() == pytest.approx(sig.at("c1", 127.0).mean, abs=1e-9)
    assert f.Get("dyroot_spurious").GetTitle() == "{}"
    f.Close()
    doc = json.loads(jpath.read_text())
    assert any(d["name"] == "bkg_c1" for d in doc["distributions"])
    with pytest.raises(OutputExistsError):
        write_workspace(tmp_path / "ws.root", cats, sig)


def test_dscb_matches_roocrystalball():
    import ROOT

    x = ROOT.RooRealVar("x_cb", "", 100.0, 170.0)
    pars = [ROOT.RooRealVar(f"p_cb{i}", "", v) for i, v in enumerate((124.9, 2.5, 1.3, 2.5, 1.7, 12.0))]
    cb = ROOT.RooCrystalBall("cb_test", "", x, *pars)
    m = np.array([110.0, 118.0, 121.6, 124.9, 127.0, 129.1, 135.0, 158.0])
    roo = []
    for v in m:
        x.setVal(float(v))
        roo.append(cb.getVal())  # unnormalised
    np.testing.assert_allclose(DSCB(124.9, 2.5, 1.3, 2.5, 1.7, 12.0)(m), roo, rtol=1e-12)
    pars[5].setVal(200.0)  # a steep tail: (n/alpha)^n alone would overflow
    roo = []
    for v in m:
        x.setVal(float(v))
        roo.append(cb.getVal())
    np.testing.assert_allclose(DSCB(124.9, 2.5, 1.3, 2.5, 1.7, 200.0)(m), roo, rtol=1e-11)


def test_signal_model_interpolation_and_json(tmp_path):
    a, b = DSCB(119.8, 2.4, 1.5, 3.0, 1.6, 10.0), DSCB(129.8, 2.6, 1.4, 4.0, 1.8, 12.0)
    model = SignalModel({"c": {120.0: a, 130.0: b}}, {"c": {120.0: 0.01, 130.0: 0.008}}, "test")
    mid = model.at("c", 125.0)
    assert mid.mean == pytest.approx(124.8) and mid.n_lo == pytest.approx(3.5) and mid.sigma == pytest.approx(2.5)
    assert model.expected_sigma_pb("c", 125.0) == pytest.approx(0.009)
    one = SignalModel({"c": {125.0: a}})
    assert one.at("c", 130.0).mean == pytest.approx(124.8) and one.at("c", 130.0).sigma == pytest.approx(2.4 * 130 / 125)
    assert one.expected_sigma_pb("c", 125.0) is None
    path = tmp_path / "signal.json"
    path.write_text(json.dumps(model.to_dict()))
    back = SignalModel.read_json(path)
    assert back.at("c", 127.0) == model.at("c", 127.0) and back.sigma_pb == model.sigma_pb
    from dyroot.exceptions import ConfigError

    with pytest.raises(ConfigError, match="n > 1"):
        DSCB(125.0, 2.5, 1.5, 0.5, 1.5, 3.0)


@pytest.mark.sim
def test_fit_signal_sample(ggh_sample):
    """DSCB per category fitted to a Pythia gg->H sample (3,000 events, m_H = 125 GeV)."""
    from dyroot.signal import fit_signal_samples

    model = fit_signal_samples([ggh_sample], min_events=20)
    assert len(model.categories) == 6
    for c in model.categories:
        p = model.at(c, 125.0)
        assert 123.5 < p.mean < 125.5  # FSR pulls the peak slightly below m_H
        assert 1.0 < p.sigma < 5.0  # physics.md: 2.2-3.3 GeV; loose for ~500 events per category
    total = sum(model.expected_sigma_pb(c, 125.0) for c in model.categories)
    from dyroot.io import read_events

    ev = read_events(ggh_sample, category="category")
    inside = (ev["category"] >= 0) & (ev["mll"] >= 110.0) & (ev["mll"] < 160.0)
    assert total == pytest.approx(ev["weight"][inside].sum(), rel=1e-9)  # sum of weights, pb


def test_sparse_template_with_empty_bins(rng):
    """A template with empty bins (RooFit's per-bin offset would be NaN there) still fits."""
    mu = exact_bins("Epoly2", {"a1": -1.2, "a2": 0.15}, 3000.0)
    toy = rng.poisson(mu).astype(np.float64)
    assert np.sum(toy == 0) > 10
    tf = TemplateFit(EDGES, toy, toy, get_function("Epoly2"), SHAPE, tag="sparse")
    b = tf.fit_background()
    assert b.ok and b.values["a1"] == pytest.approx(-1.2, abs=5 * b.errors["a1"])
    r = tf.fit_signal(SHAPE)
    assert r.ok and abs(r.values["n_sig"]) < 4 * r.errors["n_sig"]
