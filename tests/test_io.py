"""Tests of dyroot.io: reading dyroot, NanoAOD-like and ATLAS-like files, and every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dyroot.exceptions import (
    ConfigError,
    CorruptFileError,
    EmptySelectionError,
    MissingBranchError,
    MissingInputError,
    NonFiniteError,
    UnitsError,
    WeightError,
)
from dyroot.features import DEFAULT_CATEGORIES, DIMUON_COLUMNS, MUON_COLUMNS, Selection, dimuon_from_muons, muons_from_dimuon
from dyroot.io import ReadSummary, iter_events, make_tnamed, read_events, read_provenance
from dyroot.warnings import InputWarning

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")

N = 3000


def _synthetic_events(seed: int = 3, n: int = N) -> dict[str, np.ndarray]:
    """Dimuon events with dyroot's columns (the muons define everything, as in a simulated file)."""
    rng = np.random.default_rng(seed)
    d = dict(mll=100.0 + rng.exponential(25.0, n), ptll=rng.exponential(15.0, n), yll=rng.uniform(-2.0, 2.0, n),
             costheta=rng.uniform(-1, 1, n), phi_cs=rng.uniform(-np.pi, np.pi, n),
             phill=rng.uniform(-np.pi, np.pi, n))
    mu = muons_from_dimuon(**d)
    ev = {c: (mu[c].astype(np.int32) if c.endswith("charge") else mu[c]) for c in MUON_COLUMNS}
    ev.update(dimuon_from_muons(*(ev[c] for c in MUON_COLUMNS)))
    ev["category"] = DEFAULT_CATEGORIES.assign(ev)
    ev["weight"] = rng.uniform(0.5, 1.5, n) * 1e-3
    ev["mll_true"] = ev["mll"] + rng.normal(0, 1, n)
    return ev


def _write(path: Path, tree: str, branches: dict, provenance: dict | None = None) -> Path:
    with uproot.recreate(path) as f:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
        f.mktree(tree, types).extend(branches)
        if provenance is not None:
            f["dyroot_provenance"] = make_tnamed("dyroot_provenance", json.dumps(provenance))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A dyroot-format file and NanoAOD-like / ATLAS-like files made from the same events."""
    d = tmp_path_factory.mktemp("io")
    ev = _synthetic_events()
    out = {"events": ev}
    out["dyroot"] = _write(d / "dyroot.root", "events", dict(ev), {"format": "test", "seed": 3})
    # NanoAOD-like: jagged muons in shuffled order plus decoys that the pair rule must not pick
    # (a same-sign muon between the two, an opposite-sign muon below the subleading one), and
    # 50 events with no opposite-charge pair appended at the end.
    rng = np.random.default_rng(4)
    pts, etas, phis, qs = [], [], [], []
    for i in range(N):
        mus = [(ev["mu1_pt"][i], ev["mu1_eta"][i], ev["mu1_phi"][i], ev["mu1_charge"][i]),
               (ev["mu2_pt"][i], ev["mu2_eta"][i], ev["mu2_phi"][i], ev["mu2_charge"][i])]
        if i % 3 == 0:
            mus.append((0.5 * (ev["mu1_pt"][i] + ev["mu2_pt"][i]), 0.3, 1.0, ev["mu1_charge"][i]))
        if i % 4 == 0:
            mus.append((0.5 * ev["mu2_pt"][i], -0.7, 2.0, -ev["mu1_charge"][i]))
        rng.shuffle(mus)
        pts.append([m[0] for m in mus]), etas.append([m[1] for m in mus])
        phis.append([m[2] for m in mus]), qs.append([int(m[3]) for m in mus])
    for i in range(50):
        k = i % 3  # 0, 1 or 2 same-sign muons
        pts.append([40.0 - j for j in range(k)]), etas.append([0.1] * k), phis.append([0.2] * k), qs.append([1] * k)
    nano = {"Muon_pt": ak.Array(pts), "Muon_eta": ak.Array(etas), "Muon_phi": ak.Array(phis),
            "Muon_charge": ak.values_astype(ak.Array(qs), np.int32),
            "genWeight": np.concatenate([ev["weight"], np.full(50, 1e-3)])}
    out["nanoaod"] = _write(d / "nano.root", "Events", nano)
    # ATLAS-like flat ntuple in MeV, with the weight named GlobalWeight.
    atlas = {}
    for mu, tag in (("mu1", "Lead"), ("mu2", "Sub")):
        atlas[f"Muons_PT_{tag}"] = ev[f"{mu}_pt"] * 1000.0
        atlas[f"Muons_Eta_{tag}"] = ev[f"{mu}_eta"]
        atlas[f"Muons_Phi_{tag}"] = ev[f"{mu}_phi"]
        atlas[f"Muons_Charge_{tag}"] = ev[f"{mu}_charge"].astype(np.float32)
    atlas["GlobalWeight"] = ev["weight"]
    out["atlas"] = _write(d / "atlas.root", "DiMuonNtuple", atlas)
    out["dir"] = d
    return out


def _assert_same(a, b, rtol=0.0, n=None):
    n = len(b["mll"]) if n is None else n
    for c in MUON_COLUMNS + DIMUON_COLUMNS + ("category", "weight"):
        if rtol == 0.0 or c.endswith("charge") or c == "category":
            np.testing.assert_array_equal(a[c][:n], b[c][:n], err_msg=c)
        else:
            np.testing.assert_allclose(a[c][:n], b[c][:n], rtol=rtol, atol=1e-12, err_msg=c)


# ------------------------------------------------------------------------------------------------
# Reading


def test_round_trip_dyroot_format(files):
    ev = read_events(files["dyroot"], extra=["mll_true"])
    _assert_same(ev, files["events"])  # bit-identical: the same float64 muons and the same functions
    np.testing.assert_array_equal(ev["mll_true"], files["events"]["mll_true"])
    assert ev["mu1_charge"].dtype == np.int32 and ev["category"].dtype == np.int32 and ev["weight"].dtype == np.float64
    assert read_provenance(files["dyroot"]) == {"format": "test", "seed": 3}


def test_nanoaod_mapping_same_features(files):
    s = ReadSummary()
    ev = read_events(files["nanoaod"], mapping="nanoaod", weight="genWeight", summary=s)
    assert s.no_pair == 50 and s.entries == N + 50 and s.selected == N
    _assert_same(ev, files["events"])  # the pair rule recovers exactly the original muons


def test_atlas_mev_mapping_same_features(files):
    ev = read_events(files["atlas"], mapping="atlas")
    _assert_same(ev, files["events"], rtol=1e-12)  # MeV -> GeV: float64 rounding only


def test_user_mapping_reorders_by_pt(files):
    # Muons given by charge (mu+ as "mu1"): dyroot re-orders so that mu1 is the leading muon.
    ev0 = files["events"]
    pos = ev0["mu1_charge"] > 0
    branches = {}
    for var in ("pt", "eta", "phi", "charge"):
        branches[f"plus_{var}"] = np.where(pos, ev0[f"mu1_{var}"], ev0[f"mu2_{var}"])
        branches[f"minus_{var}"] = np.where(pos, ev0[f"mu2_{var}"], ev0[f"mu1_{var}"])
    branches["w"] = ev0["weight"]
    path = _write(files["dir"] / "bycharge.root", "t", branches)
    mapping = {f"mu1_{v}": f"plus_{v}" for v in ("pt", "eta", "phi", "charge")}
    mapping.update({f"mu2_{v}": f"minus_{v}" for v in ("pt", "eta", "phi", "charge")})
    _assert_same(read_events(path, mapping=mapping, weight="w"), ev0)


def test_chunks_globs_and_lists(files, tmp_path):
    shutil.copy(files["dyroot"], tmp_path / "a_1.root")
    shutil.copy(files["dyroot"], tmp_path / "a_2.root")
    chunks = list(iter_events(str(tmp_path / "a_*.root"), step_size=700))
    assert len(chunks) == 10 and all(len(c["mll"]) <= 700 for c in chunks)  # 2 files x ceil(3000 / 700)
    whole = read_events([tmp_path / "a_1.root", tmp_path / "a_2.root"])
    glued = {k: np.concatenate([c[k] for c in chunks]) for k in whole}
    _assert_same(glued, whole)
    assert len(whole["mll"]) == 2 * N


def test_weight_category_selection_extra(files):
    ev0 = files["events"]
    ev = read_events(files["dyroot"], weight="2 * weight", category="where(ptll < 15, 0, 1)",
                     selection="mll > 110 && abs(mu1_eta) < 2.4 && !(mu2_pt < 20)", extra={"dm": "mll_true - mll"})
    m = (ev0["mll"] > 110) & (np.abs(ev0["mu1_eta"]) < 2.4) & ~(ev0["mu2_pt"] < 20)
    assert len(ev["mll"]) == m.sum() > 100
    np.testing.assert_array_equal(ev["weight"], 2 * ev0["weight"][m])
    np.testing.assert_array_equal(ev["category"], np.where(ev0["ptll"][m] < 15, 0, 1))
    np.testing.assert_allclose(ev["dm"], ev0["mll_true"][m] - ev0["mll"][m], rtol=0, atol=1e-12)
    sel = Selection()
    ev = read_events(files["dyroot"], selection=sel, weight=1)
    assert len(ev["mll"]) == sel.mask(ev0).sum() and np.all(ev["weight"] == 1.0)


@pytest.mark.sim
def test_round_trip_simulated_sample(ref_sample):
    stored = uproot.open(ref_sample)["events"].arrays(library="np")
    ev = read_events(ref_sample, extra=["mll_true"])
    _assert_same(ev, stored)
    np.testing.assert_array_equal(ev["mll_true"], stored["mll_true"])


# ------------------------------------------------------------------------------------------------
# Bad inputs, one by one


def test_missing_file_suggests_nearest(files):
    with pytest.raises(MissingInputError, match="dyroot.root"):
        read_events(files["dir"] / "dyrot.root")
    with pytest.raises(MissingInputError, match="matches no file"):
        read_events(str(files["dir"] / "nothing_*.root"))
    with pytest.raises(FileNotFoundError):  # MissingInputError is a FileNotFoundError
        read_events("/no/such/dir/x.root")


def test_missing_tree_and_branch(files):
    with pytest.raises(MissingBranchError, match="'events'") as err:
        read_events(files["dyroot"], "Events")
    assert isinstance(err.value, KeyError) and err.value.name == "Events"
    with pytest.raises(MissingBranchError, match="did you mean 'Muon_pt'"):
        read_events(files["nanoaod"], mapping={"pt": "Muon_PT", "eta": "Muon_eta", "phi": "Muon_phi",
                                               "charge": "Muon_charge"})
    with pytest.raises(MissingBranchError, match="GlobalWeight"):
        read_events(files["atlas"], mapping="atlas", weight="GlobalWeigth")


def test_units_mismatch(files):
    with pytest.raises(UnitsError, match="look like MeV"):
        read_events(files["atlas"], mapping="atlas", units="GeV")
    with pytest.raises(UnitsError, match="look like GeV"):
        read_events(files["dyroot"], units="MeV")
    assert len(read_events(files["atlas"], mapping="atlas", units="GeV", check_units=False)["mll"]) == N


def test_nonfinite_counted_refused_or_dropped(files, tmp_path):
    ev = dict(files["events"])
    ev["mu1_pt"] = ev["mu1_pt"].copy()
    ev["weight"] = ev["weight"].copy()
    ev["mu1_pt"][[5, 17, 2999]] = np.nan
    ev["mu1_pt"][[100]] = np.inf
    ev["weight"][[5, 40]] = np.nan  # event 5 has two bad values: counted once per event
    path = _write(tmp_path / "nan.root", "events", ev)
    with pytest.raises(NonFiniteError, match=r"in 5 events \(per expression: mu1_pt: 4, weight: weight: 2\)"):
        read_events(path, step_size=1000)
    with pytest.warns(InputWarning, match="dropped 5 events"):
        got = read_events(path, nonfinite="drop", step_size=1000)
    assert len(got["mll"]) == N - 5 and np.all(np.isfinite(got["mll"]))


def test_empty_selection(files):
    with pytest.raises(EmptySelectionError, match="no event passed"):
        read_events(files["dyroot"], selection="mll > 1e6")


def test_non_positive_total_weight(files):
    with pytest.raises(WeightError, match="total weight"):
        read_events(files["dyroot"], weight="-weight")
    with pytest.raises(WeightError):
        read_events(files["dyroot"], weight="0 * weight")


def test_corrupt_files(files, tmp_path):
    data = Path(files["dyroot"]).read_bytes()
    (tmp_path / "truncated.root").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.root").write_text("this is not a ROOT file\n" * 20)
    for name in ("truncated.root", "text.root"):
        with pytest.raises(CorruptFileError, match="truncated"):
            read_events(tmp_path / name)


def test_bad_arguments(files, tmp_path):
    with pytest.raises(ConfigError, match="cannot parse"):
        read_events(files["dyroot"], selection="mll >")
    with pytest.raises(ConfigError, match="unknown function"):
        read_events(files["dyroot"], selection="fancy(mll) > 1")
    with pytest.raises(ConfigError, match="unsupported syntax"):
        read_events(files["dyroot"], selection="mll.__class__")
    with pytest.raises(ConfigError, match="unknown mapping preset"):
        read_events(files["dyroot"], mapping="cms")
    with pytest.raises(ConfigError, match="nonfinite"):
        read_events(files["dyroot"], nonfinite="ignore")
    two = tmp_path / "two.root"
    with uproot.recreate(two) as f:
        for t in ("a", "b"):
            f.mktree(t, {"x": np.float64}).extend({"x": np.zeros(2)})
    with pytest.raises(ConfigError, match="several trees"):
        read_events(two)


# ------------------------------------------------------------------------------------------------
# ROOT: the RDataFrame backend, and ROOT's own tools on a simulated file


@pytest.mark.root
def test_rdataframe_backend_matches_uproot(files):
    pytest.importorskip("ROOT")
    _assert_same(read_events(files["dyroot"], backend="rdataframe"), files["events"])
    _assert_same(read_events(files["nanoaod"], mapping="nanoaod", weight="genWeight", backend="rdataframe"),
                 files["events"])
    _assert_same(read_events(files["atlas"], mapping="atlas", backend="rdataframe"), files["events"], rtol=1e-12)
    with pytest.raises(MissingBranchError, match="Muon_pt"):
        read_events(files["nanoaod"], backend="rdataframe",
                    mapping={"pt": "Muon_PT", "eta": "Muon_eta", "phi": "Muon_phi", "charge": "Muon_charge"})


@pytest.mark.root
@pytest.mark.sim
def test_root_tools_read_simulated_file(ref_sample):
    pytest.importorskip("ROOT")
    from dyroot._optional import import_root

    root = import_root()
    f = root.TFile.Open(str(ref_sample))
    tree = f.Get("events")
    assert tree.GetEntries() == 10_000
    prov = json.loads(f.Get("dyroot_provenance").GetTitle())
    assert prov["n_selected"] == 10_000
    df = root.RDataFrame("events", str(ref_sample))
    assert df.Count().GetValue() == 10_000
    assert df.Sum("weight").GetValue() == pytest.approx(prov["sigma_selected_pb"], rel=1e-9)
    f.Close()
    # A multi-shard file has one cluster per shard, so RDataFrame's implicit MT can split it.
    from dyroot.simulate import preset_config, simulate

    small = ref_sample.parent / "clusters.root"
    simulate(small, 1000, preset_config(shard_size=400), seed=2, force=True)
    g = root.TFile.Open(str(small))
    it, starts = g.Get("events").GetClusterIterator(0), []
    while (start := it.Next()) < 1000:
        starts.append(start)
    g.Close()
    assert starts == [0, 400, 800]
    rootls = Path(root.__file__).parent / "bin" / "rootls"
    if rootls.exists():
        out = subprocess.run([str(rootls), "-l", str(ref_sample)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "events" in out.stdout and "TNamed" in out.stdout
