"""Tests of dyroot.rdf: generated events as an RDataFrame source (SOFIE inside RDataFrame),
parity with the Python chain, 1 vs 2 threads bit for bit, sharding, templates, memory."""

from __future__ import annotations

import json
import resource
import shutil

import numpy as np
import pytest

pytest.importorskip("ROOT")
pytest.importorskip("sofie")
pytest.importorskip("scipy_openblas32")
if shutil.which("cmake") is None or shutil.which("g++") is None:
    pytest.skip("needs cmake and g++", allow_module_level=True)

from dyroot import rdf  # noqa: E402
from dyroot.features import (  # noqa: E402
    DEFAULT_CATEGORIES,
    DIMUON_COLUMNS,
    FLOW_FEATURES,
    MUON_COLUMNS,
    Binning,
    Selection,
    muons_from_dimuon,
)
from dyroot.random import choose_category, noise  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.sofie]

COLUMNS = {
    "event": "ULong64_t", "mu1_pt": "double", "mu1_eta": "double", "mu1_phi": "double", "mu1_charge": "int",
    "mu2_pt": "double", "mu2_eta": "double", "mu2_phi": "double", "mu2_charge": "int", "mll": "double",
    "ptll": "double", "yll": "double", "costheta": "double", "phi_cs": "double", "phill": "double",
    "category": "int", "pass_selection": "bool", "weight": "double",
}


@pytest.fixture(scope="module")
def gen(tiny_bundle):
    return rdf.load_generator(tiny_bundle)


def _as_numpy(df, columns):
    return {k: np.asarray(v) for k, v in df.AsNumpy(list(columns)).items()}


def _torch_chain(bundle_path, seed, first, n, context=False):
    """The Python chain: dyroot.random noise -> torch flow -> dyroot.features kinematics."""
    from dyroot.bundle import load_bundle

    b = load_bundle(bundle_path)
    d = noise(seed, first, n)
    ctx, cat = None, None
    if context:
        fractions = b.context["fractions"]
        cat = choose_category(d.u_context, fractions)
        ctx = np.eye(len(fractions), dtype=np.float32)[cat]
    x = b.sample(d.normals, ctx).numpy().astype(np.float64)
    ev = {f: x[:, i] for i, f in enumerate(FLOW_FEATURES)}
    ev["phill"] = d.phill
    ev.update(muons_from_dimuon(*(ev[c] for c in DIMUON_COLUMNS)))
    return b, ev, cat


def test_columns_and_types(gen):
    df = gen.Events(10, 1, 0)
    assert sorted(str(c) for c in df.GetColumnNames()) == sorted(COLUMNS)
    for name, typ in COLUMNS.items():
        assert str(df.GetColumnType(name)) == typ
    assert [str(c) for c in gen.ColumnNames()] == list(COLUMNS)  # the documented order


def test_events_match_the_python_chain(tiny_bundle):
    """SOFIE in RDataFrame vs torch + dyroot.features on the same stream draws."""
    seed, first, n = 4, 1000, 700  # an unaligned shard: starts inside a batch
    df = rdf.generated_events(tiny_bundle, n, seed, first_event=first, threads=1)
    got = _as_numpy(df, COLUMNS)
    b, ev, _ = _torch_chain(tiny_bundle, seed, first, n)
    np.testing.assert_array_equal(got["event"], np.arange(first, first + n))  # exact
    np.testing.assert_allclose(got["phill"], ev["phill"], rtol=0, atol=4e-15)  # the same uniform, a few ulp of pi
    scale = {"mll": 1e-4, "ptll": 1e-4, "yll": 1e-5, "costheta": 1e-5, "phi_cs": 1e-5}
    for f in FLOW_FEATURES:  # SOFIE vs torch in float32 (parity of the model issue: 1e-4 standardised)
        np.testing.assert_allclose(got[f], ev[f], rtol=2e-5, atol=scale[f])
    for c in ("mu1_pt", "mu2_pt"):
        np.testing.assert_allclose(got[c], ev[c], rtol=1e-4, atol=1e-4)  # follows the flow's float32 precision
    sel = Selection.from_dict(b.config["selection"]).mask(ev)
    cat = DEFAULT_CATEGORIES.assign(ev)
    assert np.mean(got["pass_selection"] == sel) >= 1 - 2 / n  # at most 2 events on a cut edge
    assert np.mean(got["category"] == cat) >= 1 - 2 / n
    assert np.all(got["weight"] == b.config["sigma_pb"] / n)  # exact: one constant
    assert 0.2 < got["pass_selection"].mean() < 0.95


def test_compiled_kinematics_match_python(gen):
    """The -O3 -ffast-math kinematics of libdyroot on the flow's own output vs dyroot.features."""
    n = 2000
    vars_, cat, passed, flow = np.zeros((n, 14)), np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros((n, 5), np.float32)
    gen.Generate(9, 123, n, vars_, cat, passed, flow)
    d = noise(9, 123, n)
    ev = {f: flow[:, i].astype(np.float64) for i, f in enumerate(FLOW_FEATURES)}
    ev["phill"] = d.phill
    ev.update(muons_from_dimuon(*(ev[c] for c in DIMUON_COLUMNS)))
    ref = np.stack([ev[c] for c in MUON_COLUMNS + DIMUON_COLUMNS], axis=1)
    np.testing.assert_allclose(vars_, ref, rtol=1e-9, atol=1e-9)  # double precision, libmvec vs numpy SIMD
    np.testing.assert_array_equal(cat, DEFAULT_CATEGORIES.assign(ev))  # exact
    np.testing.assert_array_equal(passed.astype(bool), Selection().mask(ev))  # exact


def test_user_filter_define_histo(tiny_bundle):
    """A physicist's own analysis on the generated events, checked against numpy."""
    df = rdf.generated_events(tiny_bundle, 20_000, 2, threads=1)
    sel = df.Filter("pass_selection && mu1_pt > 40").Define("dphi", "std::abs(ROOT::VecOps::DeltaPhi(mu1_phi, mu2_phi))")
    h = sel.Histo1D(("h", ";#Delta#phi", 20, 0.0, 3.2), "dphi")
    hw = sel.Histo1D(("hw", ";m", 25, 110.0, 160.0), "mll", "weight")
    n_sel = sel.Count()
    a = _as_numpy(df, ["pass_selection", "mu1_pt", "mu1_phi", "mu2_phi", "mll", "weight"])
    keep = a["pass_selection"] & (a["mu1_pt"] > 40)
    dphi = np.abs(np.mod(a["mu1_phi"] - a["mu2_phi"] + np.pi, 2 * np.pi) - np.pi)[keep]
    assert n_sel.GetValue() == keep.sum() > 100
    counts, _ = np.histogram(dphi, bins=20, range=(0.0, 3.2))
    got = np.array([h.GetBinContent(i + 1) for i in range(20)])
    assert np.sum(np.abs(got - counts)) <= 2  # ROOT's bin edges vs numpy's: at most 2 events on an edge
    assert hw.Integral() == pytest.approx(a["weight"][keep].sum(), rel=1e-12)


def test_one_vs_two_threads_identical(tiny_bundle):
    """The same templates, bit for bit, for 1 and 2 threads and both event-loop methods."""
    n, seed, first = 60_000, 5, 333
    ref = rdf.fill_templates(tiny_bundle, n, seed, first_event=first, threads=1)
    assert ref.provenance["threads"] == 1
    for threads in (1, 2):
        for method in rdf.METHODS:
            if (threads, method) == (1, "events"):
                continue
            t = rdf.fill_templates(tiny_bundle, n, seed, first_event=first, threads=threads, method=method)
            assert t.provenance["threads"] == threads
            for name in ref.names:
                np.testing.assert_array_equal(t.counts[name], ref.counts[name])  # exact
                np.testing.assert_array_equal(t.sumw2[name], ref.sumw2[name])  # exact
                assert t.entries[name] == ref.entries[name]
            assert t.provenance["n_selected"] == ref.provenance["n_selected"]
    # a user histogram on the event source, 1 vs 2 threads
    hists = []
    for threads in (1, 2):
        df = rdf.generated_events(tiny_bundle, n, seed, first_event=first, threads=threads)
        h = df.Filter("pass_selection").Histo1D(("h", "", 100, 110.0, 160.0), "ptll")
        hists.append(np.array([h.GetBinContent(i) for i in range(102)]))
    np.testing.assert_array_equal(hists[0], hists[1])  # exact


def test_shards_add_up_to_one_run(tiny_bundle):
    """Shards at any (unaligned) boundary merge into exactly the single run."""
    from dyroot.templates import Templates

    n, cut = 20_000, 7_777
    whole = rdf.fill_templates(tiny_bundle, n, 8, threads=1)
    parts = [rdf.fill_templates(tiny_bundle, cut, 8, threads=1),
             rdf.fill_templates(tiny_bundle, n - cut, 8, first_event=cut, threads=2)]
    merged = Templates.merge(parts)
    for name in whole.names:
        np.testing.assert_array_equal(merged.counts[name], whole.counts[name])  # exact
    assert merged.provenance["n_events"] == n


def test_templates_content(tiny_bundle):
    t = rdf.fill_templates(tiny_bundle, 30_000, 6, threads=2, extra_variables=("ptll",))
    cats = DEFAULT_CATEGORIES.names
    assert t.names == ["mll_inclusive", *[f"mll_{c}" for c in cats], "ptll_inclusive", *[f"ptll_{c}" for c in cats]]
    inc = t.counts["mll_inclusive"]
    np.testing.assert_array_equal(t.sumw2["mll_inclusive"], inc)  # unit weights: sumw2 = counts, exact
    assert inc[0] == 0 and inc[-1] == 0  # the selection's mass window is the binning: no under/overflow
    total_cat = sum(t.counts[f"mll_{c}"].sum() for c in cats)
    assert total_cat == inc.sum() == t.provenance["n_selected"]["inclusive"]  # the categories cover every event
    assert t.counts["ptll_inclusive"].sum() == inc.sum()
    p = t.provenance
    assert p["backend"] == "sofie" and p["n_events"] == 30_000 and p["seed"] == 6 and p["first_event"] == 0
    assert p["sigma_pb"] > 0 and p["normalisation"]["mode"] == "counts"
    assert p["binning"] == {"variable": "mll", "lo": 110, "hi": 160, "width": 0.1, "nbins": 500}
    assert p["bundle_hash"] and p["selection"]["lead_pt"] == 27.0


def test_fill_templates_vs_python_chain(tiny_bundle):
    """Templates from RDataFrame equal the numpy fill of the C++ events (the histogramming
    itself is exact), and agree statistically with the torch chain."""
    from dyroot.templates import Templates

    n, seed = 20_000, 12
    t = rdf.fill_templates(tiny_bundle, n, seed, threads=1)
    b, ev, _ = _torch_chain(tiny_bundle, seed, 0, n)
    sel = Selection.from_dict(b.config["selection"]).mask(ev)
    ref = Templates.empty(categories=DEFAULT_CATEGORIES.names)
    ref.fill({"mll": ev["mll"][sel]}, DEFAULT_CATEGORIES.assign(ev)[sel])
    for name in t.names:
        diff = np.abs(t.counts[name] - ref.counts[name]).sum()
        assert diff <= 6  # SOFIE vs torch float32 rounding moves at most a few events across a 0.1 GeV edge


def test_generate_backend_sofie(tiny_bundle):
    """dyroot.generate's sofie backend is this module's fill_templates."""
    from dyroot.generate import generate_templates

    t = generate_templates(tiny_bundle, 10_000, 3, backend="sofie", threads=1, progress=False)
    ref = rdf.fill_templates(tiny_bundle, 10_000, 3, threads=1)
    for name in ref.names:
        np.testing.assert_array_equal(t.counts[name], ref.counts[name])  # exact
    assert t.provenance["backend"] == "sofie"


def test_conditional_bundle(tiny_conditional_bundle):
    """The context category is drawn from u_context with the bundle's fractions and fed one-hot."""
    seed, n = 3, 600
    df = rdf.generated_events(tiny_conditional_bundle, n, seed, threads=1)
    got = _as_numpy(df, ["context_category", *FLOW_FEATURES])
    b, ev, cat = _torch_chain(tiny_conditional_bundle, seed, 0, n, context=True)
    np.testing.assert_array_equal(got["context_category"], cat)  # exact: the same draw and edges
    np.testing.assert_allclose(got["mll"], ev["mll"], rtol=2e-5, atol=1e-4)  # SOFIE vs torch, same context
    big = _as_numpy(rdf.generated_events(tiny_conditional_bundle, 50_000, 1, threads=2), ["context_category"])
    frac = np.bincount(big["context_category"], minlength=6) / 50_000
    expected = np.asarray(b.context["fractions"]) / np.sum(b.context["fractions"])
    sigma = np.sqrt(expected * (1 - expected) / 50_000)
    assert np.all(np.abs(frac - expected) < 5 * sigma + 1e-12)  # binomial, 5 sigma


def test_memory_does_not_grow_with_n(tiny_bundle):
    rdf.fill_templates(tiny_bundle, 100_000, 1, threads=2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rdf.fill_templates(tiny_bundle, 1_000_000, 2, threads=2)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000  # < 20 MB for 10x the events (histograms and batches are fixed-size)


def test_errors(tiny_bundle):
    from dyroot.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown method"):
        rdf.fill_templates(tiny_bundle, 10, 1, method="vectors")
    with pytest.raises(ConfigError, match="seed"):
        rdf.generated_events(tiny_bundle, 10, -1)
    with pytest.raises(ConfigError, match="twice"):
        rdf.fill_templates(tiny_bundle, 10, 1, extra_variables=(Binning(variable="mll"),))
    with pytest.raises(ConfigError, match="cannot histogram"):
        rdf.fill_templates(tiny_bundle, 10, 1, extra_variables=("nonsense",))
    with pytest.raises(ConfigError, match="cannot histogram"):
        rdf.fill_templates(tiny_bundle, 10, 1, extra_variables=(Binning(0.0, 1.0, 0.5, "weight"),))


def test_benchmark_reports(tiny_bundle):
    out = rdf.benchmark(tiny_bundle, 20_000, threads=(1,), methods=("events",), n_batches=5, repeat=1)
    assert out["gemm_flops_per_event"] > 0 and out["inference_events_per_cpu_s"] > 0
    assert out["loops"][0]["events_per_s"] > 0
    json.dumps(out)  # JSON-able


def test_progress_report(tiny_bundle, capfd):
    rdf.fill_templates(tiny_bundle, 5_000, 1, threads=1, progress=True)
    err = capfd.readouterr().err
    assert "dyroot: 100.0%" in err and "events/s" in err
