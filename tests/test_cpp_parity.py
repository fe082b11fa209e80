"""Parity of the C++ twins with Python: ``dyroot/cpp/dyroot_random.hxx`` against
``dyroot.random`` and ``dyroot/cpp/dyroot_kinematics.hxx`` against ``dyroot.features``.

The headers are compiled by cling here (unoptimised, IEEE maths); the same headers
compiled into ``libdyroot`` with ``-O3 -ffast-math`` are checked in ``tests/test_rdf.py``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("ROOT")

from dyroot.features import (  # noqa: E402
    DEFAULT_CATEGORIES,
    DIMUON_COLUMNS,
    MUON_COLUMNS,
    Category,
    CategoryScheme,
    Selection,
    dimuon_from_muons,
    muons_from_dimuon,
)
from dyroot.random import choose_category, event_words, noise, uniforms  # noqa: E402

pytestmark = pytest.mark.root

CPP = pathlib.Path(__file__).resolve().parents[1] / "dyroot" / "cpp"
DATA = pathlib.Path(__file__).parent / "data"

_HELPERS = r"""
namespace dyroot_parity {
void Muons(std::size_t n, const double *d, double *out) {
   for (std::size_t i = 0; i < n; ++i) {
      const double *x = d + 6 * i;
      auto m = dyroot::MuonsFromDimuon(x[0], x[1], x[2], x[3], x[4], x[5]);
      double *o = out + 8 * i;
      o[0] = m.pt[0]; o[1] = m.eta[0]; o[2] = m.phi[0]; o[3] = m.charge[0];
      o[4] = m.pt[1]; o[5] = m.eta[1]; o[6] = m.phi[1]; o[7] = m.charge[1];
   }
}
void Dimuons(std::size_t n, const double *mu, double *out) {
   for (std::size_t i = 0; i < n; ++i) {
      const double *m = mu + 8 * i;
      auto d = dyroot::DimuonFromMuons(m[0], m[1], m[2], int(m[3]), m[4], m[5], m[6], int(m[7]));
      double *o = out + 6 * i;
      o[0] = d.mll; o[1] = d.ptll; o[2] = d.yll; o[3] = d.costheta; o[4] = d.phi_cs; o[5] = d.phill;
   }
}
void Classify(std::size_t n, const double *d, const double *mu, const dyroot::Selection &sel,
              const dyroot::CategoryScheme &cs, int *pass, int *cat) {
   for (std::size_t i = 0; i < n; ++i) {
      const double *x = d + 6 * i, *m = mu + 8 * i;
      dyroot::Muons mm{{m[0], m[4]}, {m[1], m[5]}, {m[2], m[6]}, {int(m[3]), int(m[7])}};
      auto ev = dyroot::MakeEventVars({x[0], x[1], x[2], x[3], x[4], x[5]}, mm);
      pass[i] = sel.Pass(ev);
      cat[i] = cs.Assign(ev);
   }
}
}
"""


@pytest.fixture(scope="module")
def cpp():
    from dyroot._optional import import_root

    ROOT = import_root()
    ok = ROOT.gInterpreter.Declare(f'#include "{CPP / "dyroot_random.hxx"}"\n#include "{CPP / "dyroot_kinematics.hxx"}"')
    if not ok:
        pytest.fail("cling could not compile dyroot_random.hxx / dyroot_kinematics.hxx")
    if not hasattr(ROOT, "dyroot_parity"):
        if not ROOT.gInterpreter.Declare(_HELPERS):
            pytest.fail("cling could not compile the parity helpers")
    return ROOT


# ----------------------------------------------------------------------------------------------
# random


def test_random_reference_file(cpp):
    """Words and uniforms bit for bit, normals to one float ulp, on the stored reference cases."""
    ref = json.loads((DATA / "random_stream_reference.json").read_text())
    for case in ref["cases"]:
        w = np.zeros(8, np.uint32)
        cpp.dyroot.random.EventWords(case["seed"], case["event"], w, 8)
        assert w.tolist() == case["words"]  # exact
        u = np.zeros(8)
        cpp.dyroot.random.EventUniforms(case["seed"], case["event"], u, 8)
        assert u.tolist() == case["uniforms"]  # exact
        z, ph, uc = np.zeros((1, 5), np.float32), np.zeros(1), np.zeros(1)
        cpp.dyroot.random.NoiseBatch().Generate(case["seed"], case["event"], 1, 5, z, ph, uc)
        np.testing.assert_allclose(z[0], case["normals"], rtol=1.2e-7, atol=0)  # one float32 ulp
        assert ph[0] == pytest.approx(case["phill"], rel=1e-15, abs=1e-15)
        assert uc[0] == case["u_context"]  # exact


@pytest.mark.parametrize("seed,first", [(1, 0), (12345, 2**32 - 700), (2**64 - 1, 2**40 + 17)])
def test_random_batch_matches_numpy(cpp, seed, first):
    n = 2000
    w = event_words(seed, first, n)
    got = np.zeros(8, np.uint32)
    for i in (0, 1, 699, 700, n - 1):  # across the 2^32 boundary of the event index for the second case
        cpp.dyroot.random.EventWords(seed, first + i, got, 8)
        assert got.tolist() == w[i].tolist()  # exact
    z, ph, uc = np.zeros((n, 5), np.float32), np.zeros(n), np.zeros(n)
    cpp.dyroot.random.NoiseBatch().Generate(seed, first, n, 5, z, ph, uc)
    d = noise(seed, first, n)
    np.testing.assert_array_equal(uc, d.u_context)  # exact: a uniform
    np.testing.assert_allclose(ph, d.phill, rtol=0, atol=4e-15)  # a few ulp of pi
    # log/cos/sin differ in the last bit between numpy's SIMD loops and glibc: equal after
    # the float32 cast except, rarely, by one float ulp.
    np.testing.assert_allclose(z, d.normals, rtol=1.2e-7, atol=1e-30)
    assert np.mean(z == d.normals) > 0.999  # nearly all bit-identical


def test_random_higher_dimension(cpp):
    """dim = 7 uses three blocks (dyroot.random's extension rule)."""
    n = 50
    z, ph, uc = np.zeros((n, 7), np.float32), np.zeros(n), np.zeros(n)
    cpp.dyroot.random.NoiseBatch().Generate(9, 100, n, 7, z, ph, uc)
    d = noise(9, 100, n, dim=7)
    np.testing.assert_allclose(z, d.normals, rtol=1.2e-7, atol=1e-30)
    np.testing.assert_array_equal(uc, d.u_context)  # exact
    u = uniforms(9, 100, n, 10)
    np.testing.assert_array_equal(uc, u[:, 9])  # the context is word 9 for dim 7


def test_choose_category_matches(cpp):
    fractions = [0.3, 0.05, 0.25, 0.1, 0.2, 0.1]
    # The edges as dyroot.build embeds them: running sum of f / fsum(f), last = +inf.
    from dyroot.build import context_edges

    edges = np.asarray(context_edges(fractions))
    u = uniforms(4, 0, 5000)[:, 7]
    got = np.array([cpp.dyroot.random.ChooseCategory(float(x), edges, len(edges)) for x in u])
    np.testing.assert_array_equal(got, choose_category(u, fractions))  # exact


# ----------------------------------------------------------------------------------------------
# kinematics


def _random_dimuons(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([
        rng.uniform(60.0, 200.0, n), rng.exponential(30.0, n), rng.normal(0.0, 1.5, n),
        rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n),
    ], axis=1)


def test_muons_from_dimuon(cpp, rng):
    d = _random_dimuons(rng, 20000)
    out = np.zeros((len(d), 8))
    cpp.dyroot_parity.Muons(len(d), d.ravel(), out.ravel())
    py = muons_from_dimuon(*d.T)
    ref = np.stack([py[c] for c in MUON_COLUMNS], axis=1)
    np.testing.assert_array_equal(out[:, [3, 7]], ref[:, [3, 7]])  # charges: exact
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-9)  # rounding of libm vs numpy SIMD


def test_dimuon_from_muons_roundtrip(cpp, rng):
    d = _random_dimuons(rng, 5000)
    mu = np.zeros((len(d), 8))
    cpp.dyroot_parity.Muons(len(d), d.ravel(), mu.ravel())
    back = np.zeros((len(d), 6))
    cpp.dyroot_parity.Dimuons(len(d), mu.ravel(), back.ravel())
    np.testing.assert_allclose(back, d, rtol=0, atol=1e-7)  # the C++ inverse is exact to rounding
    py = dimuon_from_muons(*mu.T)
    ref = np.stack([py[c] for c in DIMUON_COLUMNS], axis=1)
    np.testing.assert_allclose(back, ref, rtol=1e-10, atol=1e-9)


def _scheme_to_cpp(cpp, scheme: CategoryScheme):
    from dyroot.build import categories_cpp_expression

    return cpp.gInterpreter.ProcessLine(f"new dyroot::CategoryScheme({categories_cpp_expression(scheme)});")


@pytest.mark.parametrize("selection,scheme", [
    (Selection(), DEFAULT_CATEGORIES),
    (Selection(lead_pt=30.0, sublead_pt=20.0, max_abs_eta=2.4, opposite_charge=False, mll_range=None),
     CategoryScheme((Category("fwd", {"mu1_eta": (1.5, float("inf"))}), Category("low", {"mll": (0.0, 105.0)}),
                     Category("rest", {})))),
])
def test_selection_and_categories(cpp, rng, selection, scheme):
    from dyroot.build import selection_cpp_expression

    d = _random_dimuons(rng, 20000)
    mu = np.zeros((len(d), 8))
    cpp.dyroot_parity.Muons(len(d), d.ravel(), mu.ravel())
    sel = cpp.gInterpreter.ProcessLine(f"new dyroot::Selection({selection_cpp_expression(selection)});")
    cs = _scheme_to_cpp(cpp, scheme)
    sel = cpp.BindObject(sel, "dyroot::Selection")
    cs = cpp.BindObject(cs, "dyroot::CategoryScheme")
    passed, cat = np.zeros(len(d), np.int32), np.zeros(len(d), np.int32)
    cpp.dyroot_parity.Classify(len(d), d.ravel(), mu.ravel(), sel, cs, passed, cat)
    ev = {c: mu[:, i] for i, c in enumerate(MUON_COLUMNS)}
    ev.update({c: d[:, i] for i, c in enumerate(DIMUON_COLUMNS)})
    np.testing.assert_array_equal(passed.astype(bool), selection.mask(ev))  # exact
    np.testing.assert_array_equal(cat, scheme.assign(ev))  # exact
    assert 0.05 < passed.mean() < 0.95  # the test inputs exercise both branches
    assert len(set(cat.tolist())) >= 3


def test_default_categories_match_python(cpp, rng):
    """dyroot::DefaultCategories() is DEFAULT_CATEGORIES (names and cuts)."""
    cs = cpp.dyroot.DefaultCategories()
    assert [str(x) for x in cs.Names()] == DEFAULT_CATEGORIES.names
    d = _random_dimuons(rng, 5000)
    mu = np.zeros((len(d), 8))
    cpp.dyroot_parity.Muons(len(d), d.ravel(), mu.ravel())
    passed, cat = np.zeros(len(d), np.int32), np.zeros(len(d), np.int32)
    cpp.dyroot_parity.Classify(len(d), d.ravel(), mu.ravel(), cpp.dyroot.Selection(), cs, passed, cat)
    ev = {c: mu[:, i] for i, c in enumerate(MUON_COLUMNS)}
    ev.update({c: d[:, i] for i, c in enumerate(DIMUON_COLUMNS)})
    np.testing.assert_array_equal(cat, DEFAULT_CATEGORIES.assign(ev))  # exact


def test_unknown_variable_is_an_error(cpp):
    with pytest.raises(Exception, match="unknown event variable 'mjj'"):
        cpp.dyroot.VarFromName("mjj")
