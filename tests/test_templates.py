"""Tests of dyroot.templates: filling, merging, normalisations and the ROOT file format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dyroot.exceptions import ConfigError, CorruptFileError, InputError, MissingBranchError, MissingInputError, \
    OutputExistsError
from dyroot.features import DEFAULT_BINNING, Binning, CategoryScheme
from dyroot.templates import PROVENANCE_KEY, Templates, bin_index, histogram_names

CATS = ("a", "b", "c")


def _events(rng, n=5000):
    return {"mll": rng.uniform(105, 165, n), "ptll": rng.exponential(20, n)}, rng.integers(-1, 3, n)


def _filled(rng, n=5000, seed=1, first=0, weight=None):
    t = Templates.empty(DEFAULT_BINNING, CATS, extra=[Binning(0.0, 100.0, 2.0, "ptll")],
                        provenance={"seed": seed, "first_event": first, "n_events": n, "sigma_pb": 2000.0,
                                    "bundle_hash": "abc", "n_selected": {"inclusive": n}})
    v, c = _events(rng, n)
    t.fill(v, c, weight)
    return t, v, c


def test_fill_matches_numpy_histogram(rng):
    t, v, c = _filled(rng)
    edges = np.concatenate([[-np.inf], DEFAULT_BINNING.edges(), [np.inf]])
    for region, mask in (("inclusive", np.ones_like(c, bool)), ("a", c == 0), ("c", c == 2)):
        ref, _ = np.histogram(v["mll"][mask], edges)
        np.testing.assert_array_equal(t.counts[f"mll_{region}"], ref)  # exact integer counts
        np.testing.assert_array_equal(t.sumw2[f"mll_{region}"], ref)  # unit weights: sumw2 = counts
        assert t.entries[f"mll_{region}"] == mask.sum()
    assert t.counts["mll_inclusive"].sum() == len(c)
    assert sum(t.counts[f"mll_{k}"].sum() for k in CATS) == (c >= 0).sum()  # -1 only in inclusive
    assert t.names == histogram_names(t.binnings, CATS)


def test_weighted_fill(rng):
    w = rng.uniform(-0.5, 2.0, 5000)
    t, v, c = _filled(rng, weight=w)
    edges = np.concatenate([[-np.inf], DEFAULT_BINNING.edges(), [np.inf]])
    np.testing.assert_allclose(t.counts["mll_inclusive"], np.histogram(v["mll"], edges, weights=w)[0], rtol=0, atol=1e-10)  # summation order
    np.testing.assert_allclose(t.sumw2["mll_inclusive"], np.histogram(v["mll"], edges, weights=w * w)[0], rtol=0, atol=1e-10)


def test_bin_index_convention():
    b = Binning(110.0, 160.0, 0.1)
    x = np.array([109.999, 110.0, 110.1, 125.05, 159.9999, 160.0, 1e9, -np.inf, np.inf, np.nan])
    assert bin_index(x, b).tolist() == [0, 1, 2, 151, 500, 501, 501, 0, 501, 501]
    torch = pytest.importorskip("torch")
    y = np.random.default_rng(3).uniform(100, 170, 10000)
    e = b.edges()
    y = np.concatenate([y, e, np.nextafter(e, 0), np.nextafter(e, 1e3)])  # every edge and its neighbours
    np.testing.assert_array_equal(bin_index(torch.from_numpy(y), b, xp=torch).numpy(), bin_index(y, b))  # exact


def test_write_read_round_trip(rng, tmp_path):
    t, _, _ = _filled(rng, weight=rng.uniform(0.5, 1.5, 5000))
    path = t.write(tmp_path / "t.root")
    r = Templates.read(path)
    assert r.names == t.names and r.binnings == t.binnings and r.categories == CATS
    for n in t.names:
        np.testing.assert_array_equal(r.counts[n], t.counts[n])  # exact (float64 on disk)
        np.testing.assert_array_equal(r.sumw2[n], t.sumw2[n])  # exact
        assert r.entries[n] == t.entries[n]
    assert r.provenance["seed"] == 1 and r.provenance["normalisation"]["mode"] == "counts"
    assert [p.name for p in tmp_path.iterdir()] == ["t.root"]  # no temporary left behind
    # The provenance is strict JSON (no Infinity tokens) even with open-ended categories.
    from dyroot.features import DEFAULT_CATEGORIES

    t.provenance["categories"] = DEFAULT_CATEGORIES.to_list()
    t.provenance["bound"] = float("inf")
    strict = t.write(tmp_path / "s.root")
    import uproot

    text = str(uproot.open(strict)["dyroot_provenance"].member("fTitle"))

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    prov = json.loads(text, parse_constant=refuse)
    assert prov["bound"] == "inf" and prov["categories"][2]["ranges"]["ptll"] == [50.0, "inf"]
    assert CategoryScheme.from_list(prov["categories"]) == DEFAULT_CATEGORIES


@pytest.mark.root
def test_th1d_with_sumw2_in_root(rng, tmp_path):
    pytest.importorskip("ROOT")
    from dyroot._optional import import_root

    ROOT = import_root()
    w = rng.uniform(0.5, 1.5, 5000)
    t, v, c = _filled(rng, weight=w)
    t.write(tmp_path / "t.root")
    f = ROOT.TFile.Open(str(tmp_path / "t.root"))
    keys = sorted(k.GetName() for k in f.GetListOfKeys())
    assert keys == sorted([*t.names, PROVENANCE_KEY])
    for name in ("mll_inclusive", "mll_b", "ptll_a"):
        h = f.Get(name)
        assert h.ClassName() == "TH1D"  # never TH1F
        assert h.GetSumw2N() == h.GetNbinsX() + 2  # Sumw2 on
        b = t._binning_of(name)
        assert (h.GetNbinsX(), h.GetXaxis().GetXmin(), h.GetXaxis().GetXmax()) == (b.nbins, b.lo, b.hi)
        for i in (0, 1, 37, b.nbins, b.nbins + 1):
            assert h.GetBinContent(i) == t.counts[name][i]  # exact
            assert h.GetBinError(i) == pytest.approx(np.sqrt(t.sumw2[name][i]), rel=1e-15)
        assert h.GetEntries() == t.entries[name]
        inner = t.counts[name][1:-1]
        centres = 0.5 * (b.edges()[1:] + b.edges()[:-1])
        assert h.GetMean() == pytest.approx((inner * centres).sum() / inner.sum(), rel=1e-12)
    # ROOT's FindFixBin and dyroot's bin_index agree, edges included
    h = f.Get("mll_inclusive")
    xs = np.concatenate([DEFAULT_BINNING.edges(), rng.uniform(100, 170, 2000), [np.nextafter(160.0, 0)]])
    assert [h.FindFixBin(float(x)) for x in xs] == bin_index(xs, DEFAULT_BINNING).tolist()
    prov = json.loads(f.Get(PROVENANCE_KEY).GetTitle())
    assert f.Get(PROVENANCE_KEY).ClassName() == "TNamed" and prov["bundle_hash"] == "abc"
    f.Close()


def test_refuse_overwrite_and_force(rng, tmp_path):
    t, _, _ = _filled(rng)
    path = tmp_path / "t.root"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="force"):
        t.write(path)
    assert path.read_bytes() == b"precious"
    t.write(path, force=True)
    assert Templates.read(path).counts["mll_a"].sum() == t.counts["mll_a"].sum()


def test_atomic_write_leaves_old_file_on_failure(rng, tmp_path, monkeypatch):
    t, _, _ = _filled(rng)
    path = tmp_path / "t.root"
    path.write_bytes(b"old")
    t.counts["mll_b"] = "not an array"  # makes the writer fail half way
    with pytest.raises(Exception):
        t.write(path, force=True)
    assert path.read_bytes() == b"old"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["t.root"]  # the temporary was removed


def test_read_errors(tmp_path):
    with pytest.raises(MissingInputError, match="dyroot generate"):
        Templates.read(tmp_path / "nope.root")
    (tmp_path / "bad.root").write_bytes(b"not root at all" * 100)
    with pytest.raises(CorruptFileError):
        Templates.read(tmp_path / "bad.root")


def test_normalisations(rng):
    t, _, _ = _filled(rng, n=20000)
    u = t.normalised("unit")
    for n in u.names:
        assert u.counts[n][1:-1].sum() == pytest.approx(1.0, rel=1e-12)
        s = u.provenance["normalisation"]["scale"][n]
        np.testing.assert_allclose(u.sumw2[n], t.sumw2[n] * s * s, rtol=1e-12)
    x = t.normalised("xsec", lumi_fb=140.0)
    s = 140.0 * 1000.0 * 2000.0 / 20000  # L * 1000 * sigma_pb / n_events
    assert x.provenance["normalisation"] == {"mode": "xsec", "lumi_fb": 140.0, "scale": pytest.approx(s),
                                             "sigma_pb": 2000.0}
    np.testing.assert_allclose(x.counts["mll_b"], t.counts["mll_b"] * s, rtol=1e-12)
    np.testing.assert_allclose(x.sumw2["mll_b"], t.sumw2["mll_b"] * s * s, rtol=1e-12)
    # sidebands: a reference with 3x the events and a fake signal in 120-130 GeV
    ref = {n: 3.0 * t.counts[n] for n in t.names}
    ref["mll_inclusive"][101:201] += 1000.0  # bins of 120-130 GeV: blinded, must not matter
    sb = t.normalised("sidebands", reference=ref)
    assert sb.provenance["normalisation"]["scale"]["mll_inclusive"] == pytest.approx(3.0, rel=1e-12)
    assert sb.provenance["normalisation"]["scale"]["ptll_a"] == pytest.approx(3.0, rel=1e-12)
    assert t.normalised("counts").counts["mll_a"].tolist() == t.counts["mll_a"].tolist()


def test_normalisation_errors(rng):
    t, _, _ = _filled(rng)
    with pytest.raises(ConfigError, match="--lumi"):
        t.normalised("xsec")
    with pytest.raises(ConfigError, match="choose one of"):
        t.normalised("area")
    with pytest.raises(ConfigError, match="reference"):
        t.normalised("sidebands")
    with pytest.raises(MissingBranchError, match="mll_inclusive"):
        t.normalised("sidebands", reference={"mll_a": t.counts["mll_a"]})
    with pytest.raises(ConfigError, match="normalised already"):
        t.normalised("unit").normalised("unit")
    with pytest.raises(InputError, match="raw-count"):
        t.normalised("unit") + t


def test_merge_shards(rng):
    v, c = _events(rng, 6000)
    whole = Templates.empty(DEFAULT_BINNING, CATS, provenance={"seed": 1, "first_event": 0, "n_events": 6000})
    whole.fill(v, c)
    parts = []
    for lo, hi in ((0, 2500), (2500, 2501), (2501, 6000)):
        p = Templates.empty(DEFAULT_BINNING, CATS, provenance={"seed": 1, "first_event": lo, "n_events": hi - lo,
                                                                "n_selected": {"a": 1}})
        p.fill({"mll": v["mll"][lo:hi]}, c[lo:hi])
        parts.append(p)
    m = Templates.merge(parts[::-1])  # order does not matter
    for n in whole.names:
        np.testing.assert_array_equal(m.counts[n], whole.counts[n])  # exact
        assert m.entries[n] == whole.entries[n]
    assert (m.provenance["first_event"], m.provenance["n_events"]) == (0, 6000)
    assert "event_ranges" not in m.provenance and m.provenance["n_selected"] == {"a": 3}
    gap = parts[0] + parts[2]
    assert gap.provenance["event_ranges"] == [[0, 2500], [2501, 3499]]
    with pytest.raises(InputError, match="overlap"):
        parts[0] + parts[0]
    other = Templates.empty(DEFAULT_BINNING, CATS, provenance={"seed": 2, "first_event": 9000, "n_events": 1})
    with pytest.raises(InputError, match="seed"):
        parts[0] + other
    with pytest.raises(InputError, match="binnings"):
        parts[0] + Templates.empty(Binning(110.0, 160.0, 1.0), CATS)


def test_empty_validation():
    with pytest.raises(ConfigError, match="distinct"):
        Templates.empty(categories=["x", "x"])
    with pytest.raises(ConfigError, match="twice"):
        Templates.empty(extra=[Binning()])
