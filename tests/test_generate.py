"""Tests of dyroot.generate: the backends agree, the batching is invisible, memory stays flat."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from dyroot.exceptions import BuildError, ConfigError
from dyroot.features import DEFAULT_BINNING, FLOW_FEATURES, CategoryScheme, Selection, muons_from_dimuon
from dyroot.generate import batch_grid, generate_templates
from dyroot.random import noise
from dyroot.templates import Templates

pytestmark = pytest.mark.onnx
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

N = 60_000


def _reference(bundle, n, seed):
    """An independent, unbatched numpy pipeline: noise -> flow (one call) -> muons -> cuts -> fill."""
    d = noise(seed, 0, n)
    x = bundle.sample(torch.from_numpy(d.normals)).double().numpy()
    ev = {f: x[:, k] for k, f in enumerate(FLOW_FEATURES)}
    ev["phill"] = d.phill
    ev.update(muons_from_dimuon(*(ev[k] for k in ("mll", "ptll", "yll", "costheta", "phi_cs", "phill"))))
    cfg = bundle.config
    sel = Selection.from_dict(cfg["selection"]).mask(ev)
    scheme = CategoryScheme.from_list(cfg["categories"])
    cat = scheme.assign(ev)
    t = Templates.empty(DEFAULT_BINNING, scheme.names)
    t.fill({"mll": ev["mll"][sel]}, cat[sel])
    return t


@pytest.fixture(scope="module")
def torch_run(templates_bundle):
    return generate_templates(templates_bundle, N, 11, backend="torch", threads=1, batch_size=4096,
                              progress=False, extra_variables=["ptll"])


def test_torch_matches_unbatched_reference(templates_bundle, torch_run):
    ref = _reference(templates_bundle, N, 11)
    for name in ref.names:
        diff = np.abs(torch_run.counts[name] - ref.counts[name]).sum()
        assert diff <= 4, name  # identical up to float32 GEMM rounding at a bin edge (a few events at most)
    assert torch_run.counts["mll_inclusive"].sum() > 0.05 * N  # a sizeable selected sample


def test_torch_and_onnxruntime_same_seed(templates_bundle, torch_run):
    ort = generate_templates(templates_bundle, N, 11, backend="onnxruntime", batch_size=5000, progress=False,
                             extra_variables=["ptll"])
    for name in torch_run.names:
        a, b = torch_run.counts[name], ort.counts[name]
        # same noise: the two runs differ only where float32 rounding moves an event across a bin edge or a cut
        assert np.abs(a - b).sum() <= 2e-3 * a.sum() + 4, name
    for k, v in torch_run.provenance["n_selected"].items():
        assert abs(v - ort.provenance["n_selected"][k]) <= 2e-3 * v + 2, k


def test_independent_seeds_statistically_compatible(templates_bundle, torch_run):
    from scipy import stats

    other = generate_templates(templates_bundle, N, 12, backend="onnxruntime", batch_size=8192, progress=False)
    for region in ("inclusive", *torch_run.categories):
        a = torch_run.counts[f"mll_{region}"][1:-1].reshape(50, 10).sum(1)  # 1 GeV bins
        b = other.counts[f"mll_{region}"][1:-1].reshape(50, 10).sum(1)
        ok = (a + b) > 0
        chi2 = (((a - b) ** 2)[ok] / (a + b)[ok]).sum()  # two equal-N samples
        assert stats.chi2.sf(chi2, ok.sum()) > 1e-3, region  # fixed seeds; p-value of compatibility


def test_batch_size_and_threads_do_not_matter(templates_bundle, torch_run):
    # grid batches: the same events land in the same batches' rows; threads only split the work
    other = generate_templates(templates_bundle, N, 11, backend="torch", threads=1, batch_size=1024, progress=False,
                               extra_variables=["ptll"])
    for name in torch_run.names:
        assert np.abs(other.counts[name] - torch_run.counts[name]).sum() <= 4, name  # float32 GEMM rounding only
    one, two = (generate_templates(templates_bundle, 8192, 4, backend="torch", threads=t, batch_size=4096,
                                   first_event=10**12, progress=False) for t in (1, 2))
    for name in one.names:
        assert np.abs(one.counts[name] - two.counts[name]).sum() <= 2, name  # float32 GEMM rounding only


def test_memory_does_not_grow(templates_bundle, monkeypatch):
    calls = []
    orig = templates_bundle.sample

    def spy(z, *c):
        calls.append(z.shape[0])
        return orig(z, *c)

    monkeypatch.setattr(templates_bundle, "sample", spy)
    generate_templates(templates_bundle, 10_000, 3, backend="torch", batch_size=1000, first_event=500,
                       progress=False)
    assert max(calls) <= 1000 and sum(calls) == 10_000 and len(calls) == 11  # never more than one batch
    peaks = []
    for n in (8_000, 40_000):
        tracemalloc.start()
        generate_templates(templates_bundle, n, 3, backend="onnxruntime", batch_size=2000, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0] + 1e6  # 5x the events, the same peak (numpy allocations; 30 % slack)


def test_provenance_and_file(templates_bundle, torch_run, tmp_path):
    p = torch_run.provenance
    assert (p["seed"], p["first_event"], p["n_events"], p["backend"]) == (11, 0, N, "torch")
    assert p["bundle_hash"] == templates_bundle.hash and p["sigma_pb"] == templates_bundle.config["sigma_pb"]
    assert p["n_selected"]["inclusive"] == torch_run.counts["mll_inclusive"].sum()
    assert set(p["versions"]) >= {"numpy", "torch", "python"}
    torch_run.write(tmp_path / "t.root")
    back = Templates.read(tmp_path / "t.root")
    assert back.names == torch_run.names and back.provenance["bundle_hash"] == templates_bundle.hash
    np.testing.assert_array_equal(back.counts["ptll_central_midpt"], torch_run.counts["ptll_central_midpt"])


def test_errors(templates_bundle):
    with pytest.raises(ConfigError, match="choose one of"):
        generate_templates(templates_bundle, 10, 1, backend="pythia", progress=False)
    with pytest.raises(ConfigError, match="choose among"):
        generate_templates(templates_bundle, 10, 1, backend="torch", extra_variables=["nope"], progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            generate_templates(templates_bundle, 10, 1, backend="torch", device="cuda", progress=False)


def test_progress_bar_reports_rate(templates_bundle, capsys):
    generate_templates(templates_bundle, 5000, 1, backend="onnxruntime", batch_size=1000, progress=True)
    err = capsys.readouterr().err
    assert "ev/s" in err and "5.00k/5.00k" in err


def test_batch_grid():
    assert list(batch_grid(0, 10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(batch_grid(7, 0, 4)) == []
    assert sum(hi - lo for lo, hi in batch_grid(3, 1000, 64)) == 1000


@pytest.mark.sofie
def test_sofie_backend(templates_bundle):
    try:
        from dyroot import rdf
    except ImportError:
        with pytest.raises(BuildError, match="--backend torch"):
            generate_templates(templates_bundle, 10, 1, backend="sofie", progress=False)
        return
    if getattr(templates_bundle, "sofie_onnx_path", None) is None:
        pytest.skip("the stand-in bundle has no SOFIE model; needs the model stage's tiny_bundle")
    del rdf
    pytest.importorskip("ROOT")
    a = generate_templates(templates_bundle, 20_000, 5, backend="sofie", threads=1, progress=False)
    b = generate_templates(templates_bundle, 20_000, 5, backend="torch", threads=1, progress=False)
    for name in a.names:
        assert np.abs(a.counts[name] - b.counts[name]).sum() <= 2e-3 * b.counts[name].sum() + 4, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_fused_matches_cpu(templates_bundle, torch_run):
    gpu = generate_templates(templates_bundle, N, 11, backend="torch", device="cuda", batch_size=4096,
                             progress=False, extra_variables=["ptll"])
    for name in torch_run.names:
        assert np.abs(gpu.counts[name] - torch_run.counts[name]).sum() <= 2e-3 * torch_run.counts[name].sum() + 4
    templates_bundle.to("cpu")


@pytest.fixture
def cli_bundle(templates_bundle, monkeypatch):
    """The bundle's directory, loadable by the CLI (the stand-in is served from memory)."""
    import dyroot.generate as gen

    real = gen.resolve_bundle
    monkeypatch.setattr(gen, "resolve_bundle",
                        lambda b: templates_bundle if str(b) == str(templates_bundle.path) else real(b))
    return str(templates_bundle.path)


def test_cli_generate(cli_bundle, templates_bundle, tmp_path, capsys):
    from dyroot.cli import main

    out = tmp_path / "t.root"
    args = ["generate", cli_bundle, "--events", "2e4", "--seed", "3", "--output", str(out), "--backend",
            "onnxruntime", "--extra", "ptll,costheta", "--no-progress", "--json"]
    assert main(args) == 0
    prov = json.loads(capsys.readouterr().out)
    t = Templates.read(out)
    assert prov["n_events"] == 20_000 and t.provenance["seed"] == 3
    assert {"mll_inclusive", "ptll_central_lowpt", "costheta_noncentral_highpt"} <= set(t.names)
    assert main(args) == 2  # exists: refused without --force
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force", "--normalise", "xsec", "--lumi", "140"]) == 0
    x = Templates.read(out)
    s = 140 * 1000 * templates_bundle.config["sigma_pb"] / 20_000  # L * 1000 * sigma_pb / N
    assert x.provenance["normalisation"]["scale"] == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(x.counts["mll_inclusive"], t.counts["mll_inclusive"] * s, rtol=1e-12)
    assert main(args + ["--force", "--normalise", "xsec"]) == 2  # no --lumi
    assert "--lumi" in capsys.readouterr().err


def test_fixed_grid_loop_on_cpu(templates_bundle, monkeypatch):
    """The GPU loop (fixed-shape grid batches, validity mask, spread dump cells) run on the CPU."""
    import dyroot.generate as gen

    kw = dict(backend="torch", threads=1, batch_size=2048, first_event=1000, progress=False, extra_variables=["yll"])
    plain = generate_templates(templates_bundle, 9000, 8, **kw)
    monkeypatch.setattr(gen, "_fixed_grid", lambda device: True)
    grid = generate_templates(templates_bundle, 9000, 8, **kw)  # first and last batches partly masked
    for name in plain.names:
        assert np.abs(grid.counts[name] - plain.counts[name]).sum() <= 2, name  # float32 GEMM rounding only
    assert grid.provenance["n_selected"]["inclusive"] == pytest.approx(plain.provenance["n_selected"]["inclusive"],
                                                                       abs=2)


def test_conditional_bundle(request):
    """A category-conditional model: the context is drawn from u_context (one-hot), the same on every backend."""
    try:
        path = request.getfixturevalue("tiny_conditional_bundle")
    except pytest.FixtureLookupError:
        pytest.skip("needs the model stage's tiny_conditional_bundle")
    from dyroot.bundle import load_bundle

    b = load_bundle(path)
    assert b.config["context"]["kind"] == "category"
    t = generate_templates(b, 20_000, 2, backend="torch", threads=1, batch_size=4096, progress=False)
    o = generate_templates(b, 20_000, 2, backend="onnxruntime", batch_size=4096, progress=False)
    assert t.provenance["context"]["kind"] == "category"
    for name in t.names:
        assert np.abs(t.counts[name] - o.counts[name]).sum() <= 2e-3 * t.counts[name].sum() + 4, name
