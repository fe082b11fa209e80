"""Tests of dyroot.train and ``dyroot train``: weighted likelihood with negative weights,
determinism, early stopping, checkpoint + resume after SIGKILL, ensembles, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dyroot.bundle import load_bundle, load_ensemble  # noqa: E402
from dyroot.exceptions import ConfigError, EmptySelectionError, OutputExistsError, WeightError  # noqa: E402
from dyroot.features import FLOW_FEATURES, Selection  # noqa: E402
from dyroot.flows import FlowConfig  # noqa: E402
from dyroot.train import TrainConfig, train_bundle, train_ensemble, training_arrays  # noqa: E402

TINY = FlowConfig(layers=2, hidden=16, bins=6)
FAST = TrainConfig(epochs=2, batch_size=1024, threads=1, seed=5)


def _subset(ev: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v[:n] for k, v in ev.items()}


def test_negative_weights_cancel(tmp_path):
    """Known answer: a +1 and a -1 copy of the same component cancel in the weighted NLL.

    yll is N(0, 1) with weight +1 (24 000 events) plus N(2.5, 0.3) twice, with weights +1 and
    -1 (8 000 each). The signed-weight distribution is N(0, 1): the trained flow's yll mean
    must be 0 (within 0.12; its statistical error is ~0.03), not the 1.0 one would get by
    dropping the sign.
    """
    rng = np.random.default_rng(3)
    n_a, n_b = 24_000, 8_000
    n = n_a + 2 * n_b
    b = rng.normal(2.5, 0.3, n_b)
    ev = {"mll": rng.uniform(110, 160, n), "ptll": rng.gamma(2.0, 5.0, n) + 0.1,
          "yll": np.concatenate([rng.normal(0, 1, n_a), b, b + rng.normal(0, 0.01, n_b)]),
          "costheta": rng.uniform(-0.9, 0.9, n), "phi_cs": rng.uniform(-3, 3, n),
          "weight": np.concatenate([np.ones(n_a), np.ones(n_b), -np.ones(n_b)])}
    out = train_bundle(ev, tmp_path / "b", flow=FlowConfig(architecture="affine", layers=2, hidden=16),
                       train=TrainConfig(epochs=8, batch_size=1024, lr=5e-3, threads=1, seed=2, patience=8),
                       preprocessing="none", training_selection=Selection(mll_range=(105.0, 165.0)),
                       progress=False)
    b = load_bundle(out)
    assert b.sigma_pb == pytest.approx(n_a)  # sum of weights, negative ones included
    x = b.sample(torch.randn(40_000, 5, generator=torch.Generator().manual_seed(1))).numpy()
    assert abs(float(x[:, 2].mean())) < 0.12


def test_training_arrays_selection_and_errors(toy_events):
    x, w, mask = training_arrays(toy_events)
    assert x.shape == (int(mask.sum()), 5)
    assert np.all((x[:, 0] >= 108.0) & (x[:, 0] < 162.0))  # default window 108-162 GeV
    assert w.sum() == pytest.approx(toy_events["weight"][mask].sum())
    with pytest.raises(EmptySelectionError, match="loosen"):
        training_arrays(toy_events, Selection(lead_pt=5000.0))
    bad = dict(toy_events, weight=-toy_events["weight"])
    with pytest.raises(WeightError, match="total weight"):
        training_arrays(bad)


def test_deterministic_and_early_stopping(tmp_path, toy_events):
    ev = _subset(toy_events, 6000)
    a = train_bundle(ev, tmp_path / "a", flow=TINY, train=FAST, progress=False)
    b = train_bundle(ev, tmp_path / "b", flow=TINY, train=FAST, progress=False)
    sa = torch.load(a / "weights.pt", weights_only=True)
    sb = torch.load(b / "weights.pt", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed, same threads: identical
    c = train_bundle(ev, tmp_path / "c", flow=TINY, train=TrainConfig(epochs=2, batch_size=1024, threads=1, seed=6),
                     progress=False)
    sc = torch.load(c / "weights.pt", weights_only=True)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # min_delta too large to ever improve: stops after 1 + patience epochs, keeps epoch 1
    d = train_bundle(ev, tmp_path / "d", flow=TINY, train=TrainConfig(epochs=10, batch_size=1024, threads=1,
                                                                         patience=2, min_delta=100.0),
                     progress=False)
    cfg = json.loads((d / "bundle.json").read_text())
    assert cfg["training"]["stopped_early"] and cfg["training"]["epochs_run"] == 3
    assert cfg["training"]["best_epoch"] == 1
    rows = (d / "losses.csv").read_text().strip().splitlines()
    assert rows[0] == "epoch,train_loss,val_loss,lr,seconds" and len(rows) == 4
    assert (d / "losses.png").stat().st_size > 1000


def test_refuses_to_overwrite(tmp_path, toy_events):
    ev = _subset(toy_events, 3000)
    out = train_bundle(ev, tmp_path / "m", flow=TINY, train=TrainConfig(epochs=1, threads=1), progress=False)
    with pytest.raises(OutputExistsError, match="--force"):
        train_bundle(ev, out, flow=TINY, train=TrainConfig(epochs=1, threads=1), progress=False)
    train_bundle(ev, out, flow=TINY, train=TrainConfig(epochs=1, threads=1), progress=False, force=True)


_KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from _fixtures_model import toy_dimuon_events
from dyroot.flows import FlowConfig
from dyroot.train import TrainConfig, train_bundle
ev = toy_dimuon_events(12000, seed=11)
train_bundle(ev, {out!r}, flow=FlowConfig(layers=2, hidden=16, bins=6),
             train=TrainConfig(epochs=4, batch_size=1024, threads=1, seed=9), progress=False,
             _pause_after_epoch={pause})
"""


def test_resume_after_sigkill(tmp_path):
    """Kill a training process (SIGKILL) after its first checkpoint; resuming gives the same
    weights as an uninterrupted run, bit for bit (same seed, one thread)."""
    from _fixtures_model import toy_dimuon_events

    killed = tmp_path / "killed"
    code = _KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(killed), pause=60)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = tmp_path / "killed.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=err)
        ckpt = killed / "checkpoint.pt"
        deadline = time.time() + 120
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if not ckpt.exists():
            proc.kill()
            proc.wait()
            pytest.fail(f"no checkpoint from the training process: {log.read_text()[-2000:]}")
        proc.send_signal(signal.SIGKILL)  # during the pause after epoch 1: no bundle.json yet
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "bundle.json").exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1

    ev = toy_dimuon_events(12000, seed=11)
    kw = dict(flow=FlowConfig(layers=2, hidden=16, bins=6),
              train=TrainConfig(epochs=4, batch_size=1024, threads=1, seed=9), progress=False)
    train_bundle(ev, killed, resume=True, **kw)
    ref = train_bundle(ev, tmp_path / "ref", **kw)
    a = torch.load(killed / "weights.pt", weights_only=True)
    b = torch.load(ref / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (killed / "losses.csv").read_text() .count("\n") == 5  # header + 4 epochs
    with pytest.raises(ConfigError, match="other data or options"):
        train_bundle(ev, killed, resume=True, **{**kw, "train": TrainConfig(epochs=4, batch_size=512, threads=1,
                                                                              seed=9)})


def test_ensemble_bootstrap_and_disjoint(tmp_path, toy_events):
    ev = _subset(toy_events, 6000)
    tr = TrainConfig(epochs=1, batch_size=1024, threads=1, seed=4)
    members = train_ensemble(ev, tmp_path / "ens", 2, train=tr, flow=TINY, progress=False)
    assert [m.name for m in members] == ["member_00", "member_01"]
    meta = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert meta["format"] == "dyroot-ensemble" and meta["mode"] == "bootstrap" and meta["seeds"] == [4, 5]
    bundles = load_ensemble(tmp_path / "ens")
    sig = [b.sigma_pb for b in bundles]
    total = training_arrays(ev)[1].sum()
    assert sig[0] != sig[1]  # bootstrap replicas differ
    for s in sig:  # Poisson(1) replicas: sum of weights within 5 sigma of the sample's
        assert s == pytest.approx(total, rel=5 / np.sqrt(len(training_arrays(ev)[1])))
    members = train_ensemble(ev, tmp_path / "dis", 3, mode="disjoint", train=tr, flow=TINY, progress=False)
    n_train = [json.loads((m / "bundle.json").read_text())["n_train"] for m in members]
    assert sum(n_train) == pytest.approx(0.9 * len(training_arrays(ev)[1]), abs=3)  # disjoint thirds, 10 % val
    with pytest.raises(ConfigError, match="k >= 2"):
        train_ensemble(ev, tmp_path / "one", 1, train=tr)


def test_cli_train_then_export(tmp_path, toy_events_file, capsys):
    """The issue's "done when": `dyroot train ref.root --output model/ --epochs 2`, then `dyroot export model/`."""
    from dyroot.cli import main

    out = tmp_path / "model"
    rc = main([ "train", toy_events_file, "--output", str(out), "--epochs", "2", "--layers", "2", "--hidden", "16",
               "--bins", "6", "--threads", "1", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bundles"][0]["best_epoch"] in (1, 2)
    for name in ("bundle.json", "weights.pt", "provenance.json", "losses.csv", "sampler.onnx", "sampler_sofie.onnx"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["source"]["sha256"][0]) == 64 and prov["seed"] == 1
    (out / "sampler.onnx").unlink()
    assert main(["export", str(out)]) == 0
    assert (out / "sampler.onnx").is_file()
    assert main(["train", toy_events_file, "--output", str(out), "--epochs", "1"]) == 2  # exists: refuse
    assert "--force" in capsys.readouterr().err


def test_variables_context(tmp_path, toy_events):
    """A user-variable context: stored with its standardisation, fed in its own units."""
    ev = _subset(toy_events, 4000)
    ev = dict(ev, njets=np.random.default_rng(2).poisson(1.5, len(ev["mll"])).astype(np.float64))
    out = train_bundle(ev, tmp_path / "v", flow=TINY, train=TrainConfig(epochs=1, threads=1), context=["njets"],
                       progress=False)
    b = load_bundle(out)
    assert b.context["kind"] == "variables" and b.context["names"] == ["njets"] and b.context_dim == 1
    assert b.context["mean"][0] == pytest.approx(1.5, abs=0.1)  # Poisson(1.5): mean 1.5, error 0.02
    x = b.sample(torch.randn(50, 5), torch.full((50, 1), 2.0))
    assert torch.all(torch.isfinite(x))
    with pytest.raises(Exception, match="njetz"):
        train_bundle(ev, tmp_path / "w", flow=TINY, train=TrainConfig(epochs=1), context=["njetz"], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training(tmp_path, toy_events):
    out = train_bundle(_subset(toy_events, 4000), tmp_path / "cuda", flow=TINY,
                       train=TrainConfig(epochs=1, device="cuda"), progress=False)
    b = load_bundle(out, device="cuda")
    x = b.sample(torch.randn(100, 5))
    assert x.is_cuda and bool(torch.all(torch.isfinite(x)))


def test_cuda_refused_without_device(tmp_path, toy_events):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="cuda"):
        train_bundle(_subset(toy_events, 2000), tmp_path / "x", flow=TINY,
                     train=TrainConfig(epochs=1, device="cuda"), progress=False)


def test_features_order_is_the_contract():
    assert FLOW_FEATURES == ("mll", "ptll", "yll", "costheta", "phi_cs")
