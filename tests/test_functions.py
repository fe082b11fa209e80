"""Tests of dyroot.functions: the background catalogue as data (pure, no ROOT)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dyroot.exceptions import ConfigError, MissingBranchError
from dyroot.functions import (
    BackgroundFunction,
    DYCore,
    Parameter,
    available_functions,
    default_functions,
    dy_core,
    dy_lineshape,
    gauss_legendre_nodes,
    get_function,
    initial_values,
    load_functions_file,
    register,
    resolve_functions,
    substitute,
    unregister,
)

EDGES = np.linspace(110.0, 160.0, 501)


def test_default_catalogue_names_and_parameter_counts():
    names = [f.name for f in default_functions()]
    assert names[:5] == [f"Epoly{n}" for n in range(1, 6)]
    assert len(names) == 24 and len(set(names)) == 24
    counts = {f.name: f.n_params for f in default_functions()}
    assert counts["Epoly3"] == 3 and counts["Power0"] == 1 and counts["Power3"] == 4
    assert counts["Bernstein5"] == 5 and counts["CoreEpoly2"] == 2 and counts["CorePower2"] == 3
    assert counts["BWZRedux"] == 3 and counts["BWZBern2"] == 2
    assert all(f.references for f in default_functions())
    assert get_function("CoreEpoly1").uses_core and not get_function("Epoly1").uses_core


@pytest.mark.parametrize("family,orders", [("Epoly", range(1, 5)), ("Power", range(0, 3)),
                                           ("Bernstein", range(1, 5)), ("CoreEpoly", range(1, 3)),
                                           ("CorePower", range(0, 2)), ("BWZBern", range(1, 3))])
def test_families_nest(family, orders, rng):
    """Member N+1 with its extra parameter at the value that switches it off is member N."""
    m = np.linspace(110.0, 160.0, 41)
    core = dy_core(m, 0.02)
    for n in orders:
        small, big = get_function(f"{family}{n}"), get_function(f"{family}{n + 1}")
        vals = {p.name: p.start + 0.1 * rng.normal() for p in small.parameters}
        if family in ("Bernstein", "BWZBern"):
            # degree elevation: the same polynomial in the higher Bernstein basis
            c = [1.0] + [vals[f"c{k}"] for k in range(1, n + 1)]
            up = [c[0]] + [(k * c[k - 1] + (n + 1 - k) * c[k]) / (n + 1) for k in range(1, n + 1)] + [c[n]]
            big_vals = {f"c{k}": up[k] for k in range(1, n + 2)}
        else:
            extra = [p.name for p in big.parameters if p.name not in vals]
            big_vals = {**vals, **{e: 0.0 for e in extra}}
        a = small.evaluate(m, vals, core=core)
        b = big.evaluate(m, big_vals, core=core)
        np.testing.assert_allclose(b, a, rtol=1e-12)  # exact up to rounding


def test_formulas_against_hand_written_forms():
    m = np.array([112.0, 125.0, 151.5])
    t, u, x = (2 * m - 270.0) / 50.0, (m - 110.0) / 50.0, m / 100.0
    f = get_function("BWZRedux")
    np.testing.assert_allclose(f.evaluate(m, {"a1": 2.1, "a2": -0.5, "a3": 0.05}),
                               np.exp(-0.5 * t + 0.05 * t**2) / ((m - 91.1876) ** 2.1 + (2.4952 / 2) ** 2.1), rtol=1e-13)
    np.testing.assert_allclose(get_function("Power1").evaluate(m, {"a0": -4.0, "a1": 0.3}), x ** (-4.0 + 0.3 * t), rtol=1e-13)
    b3 = get_function("Bernstein3").evaluate(m, {"c1": 0.7, "c2": 0.4, "c3": 0.2})
    hand = (1 - u) ** 3 + 0.7 * 3 * u * (1 - u) ** 2 + 0.4 * 3 * u**2 * (1 - u) + 0.2 * u**3
    np.testing.assert_allclose(b3, hand, rtol=1e-13)
    ones = get_function("Bernstein4").evaluate(m, {f"c{k}": 1.0 for k in range(1, 5)})
    np.testing.assert_allclose(ones, 1.0, rtol=1e-13)  # partition of unity
    e2 = get_function("Epoly2").evaluate(m, {"a1": -1.0, "a2": 0.2}, lo=100.0, hi=200.0)
    t2 = (2 * m - 300.0) / 100.0
    np.testing.assert_allclose(e2, np.exp(-t2 + 0.2 * t2**2), rtol=1e-13)


def test_substitute_respects_tokens():
    assert substitute("a1*t + 2e-3*ta + t1", {"t": "T", "a1": "@1"}) == "@1*T + 2e-3*ta + t1"
    assert substitute("pow(m,2)", {"m": "(m+0.1)"}) == "pow((m+0.1),2)"


@pytest.mark.parametrize("expr,params,match", [
    ("exp(a^2)", ["a"], "pow"),
    ("exp(a**2)", ["a"], "pow"),
    ("exp(b*x)", ["a"], "unknown names"),
    ("exp(x)", ["a"], "do not appear"),
    ("__import__('os')", [], "may be called|not allowed"),
    ("a[0]*x", ["a"], "not allowed"),
    ("exp(a*x", ["a"], "does not parse"),
])
def test_invalid_formulas_are_refused(expr, params, match):
    with pytest.raises(ConfigError, match=match):
        BackgroundFunction("Bad", expr, tuple(Parameter(p, 0.0, -1.0, 1.0) for p in params))


def test_parameter_validation():
    with pytest.raises(ConfigError, match="reserved"):
        Parameter("t", 0.0, -1.0, 1.0)
    with pytest.raises(ConfigError, match="lo <= start"):
        Parameter("a", 5.0, -1.0, 1.0)


def test_register_lookup_and_nearest_names():
    f = register({"name": "TestExpPow", "expression": "exp(b*t)*pow(x, c)",
                  "parameters": [{"name": "b", "start": -1, "lo": -20, "hi": 20},
                                 {"name": "c", "start": -4, "lo": -20, "hi": 20}], "references": ["test"]})
    try:
        assert "TestExpPow" in available_functions() and f.n_params == 2
        assert [g.name for g in resolve_functions("TestExp*")] == ["TestExpPow"]
        with pytest.raises(ConfigError, match="exists"):
            register(BackgroundFunction("TestExpPow", "exp(b*t)", (Parameter("b", 0, -1, 1),)))
        assert BackgroundFunction.from_dict(f.to_dict()) == f
    finally:
        unregister("TestExpPow")
    with pytest.raises(MissingBranchError, match="Epoly3"):
        get_function("epoly3x")
    with pytest.raises(ConfigError, match="default"):
        unregister("Epoly1")
    assert [g.name for g in resolve_functions("Epoly2, BWZRedux,Epoly2")] == ["Epoly2", "BWZRedux"]


def test_functions_file_toml_and_json(tmp_path):
    toml = tmp_path / "f.toml"
    toml.write_text('[[functions]]\nname = "TomlExp"\nexpression = "exp(b*t)"\n'
                    'parameters = [{name = "b", start = -1.0, lo = -10.0, hi = 10.0}]\n')
    js = tmp_path / "f.json"
    js.write_text(json.dumps({"functions": [{"name": "JsonExp", "expression": "exp(b*t + c*pow(t,2))",
                                             "parameters": [{"name": "b", "start": -1, "lo": -10, "hi": 10},
                                                            {"name": "c", "start": 0, "lo": -10, "hi": 10}]}]}))
    try:
        assert [f.name for f in load_functions_file(toml)] == ["TomlExp"]
        assert [f.name for f in load_functions_file(js)] == ["JsonExp"]
        assert get_function("JsonExp").n_params == 2
    finally:
        unregister("TomlExp")
        unregister("JsonExp")
    bad = tmp_path / "bad.toml"
    bad.write_text("functions = [ {name = 'X'} ]")
    with pytest.raises(ConfigError, match="lacks the key"):
        load_functions_file(bad)


def test_entry_points_are_loaded(monkeypatch):
    import importlib.metadata as md

    import dyroot.functions as F

    entry = BackgroundFunction("EntryPointExp", "exp(b*t)", (Parameter("b", -1.0, -5.0, 5.0),))

    class EP:
        def load(self):
            return lambda: [entry]

    monkeypatch.setattr(md, "entry_points", lambda group=None: [EP()] if group == F.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(F, "_ENTRY_POINTS_LOADED", False)
    try:
        assert get_function("EntryPointExp") == entry
    finally:
        unregister("EntryPointExp")


def test_two_node_gauss_legendre_bin_average():
    """The bin average the fits use: error h^4 f''''/4320, i.e. ~1e-12 here."""
    f = get_function("Epoly3")
    vals = {"a1": -1.5, "a2": 0.2, "a3": -0.05}
    xg, wg = np.polynomial.legendre.leggauss(10)
    c, h = 0.5 * (EDGES[1:] + EDGES[:-1]), np.diff(EDGES)
    exact = np.array([0.5 * np.sum(wg * f.evaluate(ci + 0.5 * hi * xg, vals)) for ci, hi in zip(c, h)])
    rel = np.abs(f.bin_average(EDGES, vals) / exact - 1)
    assert rel.max() < 1e-10  # analytic bound ~1e-13
    mid = f.evaluate(c, vals)
    assert np.abs(mid / exact - 1).max() > 1e-7  # the bin-centre value is visibly worse
    lo, hi = gauss_legendre_nodes(EDGES)
    np.testing.assert_allclose(hi - lo, h / math.sqrt(3.0), rtol=1e-12)


def test_lineshape_peak_and_interference():
    m = np.linspace(85.0, 97.0, 12001)
    shape = dy_lineshape(m)
    assert abs(m[np.argmax(shape)] - 91.1876) < 0.05  # the Z peak (GeV)
    # interference: the pure-Z lineshape (no photon) falls more steeply above the peak than the full one
    no_photon = DYCore(up_fraction=0.6)
    full = dy_lineshape(np.array([110.0, 150.0]), no_photon)
    s = np.array([110.0, 150.0]) ** 2
    bw = s / ((s - 91.1876**2) ** 2 + (s * 2.4952 / 91.1876) ** 2) / np.sqrt(s)
    assert full[0] / full[1] < bw[0] / bw[1]  # the photon term flattens the tail
    # one point by hand: up-type only
    mm, sw2 = 120.0, 0.23122
    ss = mm * mm
    chi = ss / (ss - 91.1876**2 + 1j * ss * 2.4952 / 91.1876) / (4 * sw2 * (1 - sw2))
    vl, al, qu = -0.5 + 2 * sw2, -0.5, 2.0 / 3.0
    vu, au = 0.5 - 2 * qu * sw2, 0.5
    hand = (qu**2 - 2 * qu * vu * vl * chi.real + (vu**2 + au**2) * (vl**2 + al**2) * abs(chi) ** 2) / mm
    assert dy_lineshape(np.array([mm]), DYCore(up_fraction=1.0))[0] == pytest.approx(hand, rel=1e-12)


def test_core_convolution():
    m = np.array([112.0, 125.0, 150.0])
    sharp = dy_core(m, 1e-4)
    np.testing.assert_allclose(sharp, dy_lineshape(m), rtol=2e-5)  # tiny resolution: the lineshape itself
    wide = dy_core(m, 0.02)
    assert np.all(wide > sharp * 0.999) and wide[0] > sharp[0] * 1.001  # smearing fills the convex tail
    with pytest.raises(ConfigError, match="relative"):
        dy_core(m, 2.5)


@pytest.mark.parametrize("name,truth", [("Epoly3", {"a1": -1.5, "a2": 0.2, "a3": -0.05}),
                                        ("BWZRedux", {"a1": 2.2, "a2": -0.4, "a3": 0.03}),
                                        ("Power2", {"a0": -6.0, "a1": 0.5, "a2": -0.1})])
def test_initial_values_recover_the_truth(name, truth):
    f = get_function(name)
    counts = f.bin_average(EDGES, truth)
    counts *= 1e6 / counts.sum()
    got = initial_values(f, EDGES, counts)
    for k, v in truth.items():
        assert got[k] == pytest.approx(v, abs=2e-3)  # noiseless input: the least squares find it
