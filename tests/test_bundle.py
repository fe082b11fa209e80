"""Tests of dyroot.bundle: the bundle contract, loading with safe loaders, clear errors."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dyroot.bundle import BUNDLE_VERSION, bundle_hash, load_bundle, load_ensemble  # noqa: E402
from dyroot.exceptions import BundleError  # noqa: E402
from dyroot.features import DEFAULT_CATEGORIES, FLOW_FEATURES, Selection  # noqa: E402
from dyroot.train import training_arrays  # noqa: E402


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_contract(tiny_bundle, toy_events):
    b = load_bundle(tiny_bundle)
    cfg = b.config
    assert cfg["format"] == "dyroot-bundle" and cfg["format_version"] == BUNDLE_VERSION
    assert tuple(cfg["features"]) == FLOW_FEATURES == b.features
    assert b.context is None and b.context_dim == 0
    assert b.sofie_batch == 256
    assert b.selection == Selection()
    assert b.categories == DEFAULT_CATEGORIES
    assert b.training_selection.mll_range == (108.0, 162.0)
    _, w, _ = training_arrays(toy_events)
    assert b.sigma_pb == pytest.approx(float(w.sum()), rel=1e-12)  # sum of weights after the pre-selection
    assert [p["name"] for p in cfg["preprocessing"]] == list(FLOW_FEATURES)
    assert len(b.hash) == 64 and b.hash == bundle_hash(tiny_bundle)
    prov = json.loads((b.path / "provenance.json").read_text())
    assert {"versions", "seed", "training", "sum_weights"} <= set(prov)


def test_sample_is_physical(tiny_bundle):
    b = load_bundle(tiny_bundle)
    z = torch.randn(20_000, 5, generator=torch.Generator().manual_seed(2))
    z[:5] = torch.tensor([8.0, -8.0, 6.0, -6.0, 0.0])[:, None]  # far tails stay finite and in range
    x = b.sample(z).numpy()
    assert x.dtype == np.float32 and x.shape == (20_000, 5)
    assert np.all(np.isfinite(x))
    assert np.all((x[:, 0] >= 108.0) & (x[:, 0] <= 162.0))  # mll inside the training window (exact edges)
    assert np.all(x[:, 1] > 0)
    assert np.all(np.abs(x[:, 3]) <= 1.0) and np.all(np.abs(x[:, 4]) <= math.pi + 1e-5)
    # the same noise gives the same events after a reload (save/load round trip)
    again = load_bundle(tiny_bundle).sample(z).numpy()
    assert np.array_equal(x, again)
    lp = b.log_prob(x[5:100])
    assert torch.all(torch.isfinite(lp))


def test_conditional_bundle(tiny_conditional_bundle):
    b = load_bundle(tiny_conditional_bundle)
    ctx = b.context
    assert ctx["kind"] == "category" and ctx["names"][: len(DEFAULT_CATEGORIES)] == DEFAULT_CATEGORIES.names
    assert sum(ctx["fractions"]) == pytest.approx(1.0, abs=1e-12)
    assert b.context_dim == len(ctx["names"])
    onehot = torch.nn.functional.one_hot(torch.arange(600) % b.context_dim, b.context_dim).float()
    x = b.sample(torch.randn(600, 5), onehot)
    assert torch.all(torch.isfinite(x))
    with pytest.raises(Exception, match="conditional"):
        b.sample(torch.randn(3, 5))


def test_missing_files_and_versions(bundle_copy, tmp_path):
    (bundle_copy / "weights.pt").unlink()
    with pytest.raises(BundleError, match="no weights.pt"):
        load_bundle(bundle_copy)
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nothing")
    cfg = json.loads((bundle_copy / "bundle.json").read_text())
    (bundle_copy / "bundle.json").write_text(json.dumps({**cfg, "format_version": BUNDLE_VERSION + 1}))
    with pytest.raises(BundleError, match="upgrade dyroot"):
        load_bundle(bundle_copy)
    (bundle_copy / "bundle.json").write_text(json.dumps({**cfg, "format": "something"}))
    with pytest.raises(BundleError, match="not a dyroot bundle"):
        load_bundle(bundle_copy)
    (bundle_copy / "bundle.json").write_text("{ truncated")
    with pytest.raises(BundleError, match="corrupt"):
        load_bundle(bundle_copy)
    (bundle_copy / "bundle.json").unlink()
    with pytest.raises(BundleError, match="--resume"):  # a checkpoint and no bundle.json: unfinished training
        load_bundle(bundle_copy)


def test_weights_of_another_model_are_refused(bundle_copy):
    cfg = json.loads((bundle_copy / "bundle.json").read_text())
    cfg["flow"]["hidden"] = 2 * cfg["flow"]["hidden"]
    (bundle_copy / "bundle.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="cannot load the weights"):
        load_bundle(bundle_copy)


def test_onnx_paths_and_hash(bundle_copy):
    b = load_bundle(bundle_copy)
    assert b.onnx_path.name == "sampler.onnx" and b.sofie_onnx_path.name == "sampler_sofie.onnx"
    (bundle_copy / "sampler_sofie.onnx").unlink()
    with pytest.raises(BundleError, match="dyroot export"):
        _ = load_bundle(bundle_copy).sofie_onnx_path
    h0 = b.hash
    cfg = json.loads((bundle_copy / "bundle.json").read_text())
    cfg["sofie_batch"] = 512
    (bundle_copy / "bundle.json").write_text(json.dumps(cfg))
    assert load_bundle(bundle_copy).hash != h0  # the hash covers bundle.json


def test_ensemble_directory_is_not_a_bundle(bundle_copy, tmp_path):
    ens = tmp_path / "ens"
    ens.mkdir()
    shutil.copytree(bundle_copy, ens / "member_00")
    (ens / "ensemble.json").write_text(json.dumps({"format": "dyroot-ensemble", "format_version": 1,
                                                   "members": ["member_00"], "mode": "bootstrap"}))
    with pytest.raises(BundleError, match="load_ensemble"):
        load_bundle(ens)
    assert len(load_ensemble(ens)) == 1
    with pytest.raises(BundleError, match="not an ensemble"):
        load_ensemble(bundle_copy)
