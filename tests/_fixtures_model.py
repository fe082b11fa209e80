"""Session fixtures of the model stage (owned by that stage's tests).

* ``toy_events``: 30 000 toy Drell-Yan-like events (dict of columns, the contract of
  ``dyroot.io.read_events``) passing the default training pre-selection; made in
  numpy in well under a second, no Pythia (the shapes are DY-like, not physics).
* ``toy_events_file``: the same written as a ``dyroot simulate``-like ROOT file (TTree
  ``events``, uproot), for CLI tests.
* ``tiny_bundle``: a complete bundle (spline flow, 4 layers of 2x32, 8 bins, ONNX
  exported) trained for 3 epochs on ``toy_events`` in a few seconds: real, but not a
  good model. Path of the bundle directory; load it with ``dyroot.bundle.load_bundle``.
* ``tiny_conditional_bundle``: the same with a one-hot category context.
* ``tiny_sofie``: ``tiny_bundle``'s ``sampler_sofie.onnx`` generated and compiled by
  ``dyroot.sofie`` (a :class:`dyroot.sofie.SofieModel`); skips without SOFIE or g++.
"""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.features import DEFAULT_CATEGORIES, MUON_COLUMNS, Selection, muons_from_dimuon

TOY_SIGMA_PB = 25.0  # the toy sample's "cross-section": sum of weights after the toy pre-selection


def toy_dimuon_events(n: int, seed: int = 1, *, mll_range: tuple[float, float] = (95.0, 180.0),
                      negative_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """Toy DY-like events: power law + Z tail in mll, gamma-like ptll, 1+cos^2 costheta.

    Args:
        n: events to generate before the pre-selection (about 85 % survive).
        seed: numpy seed.
        mll_range: the generated mass window in GeV.
        negative_fraction: fraction of events given weight -1 (times the unit weight),
            the rest +1 (NLO-like signed weights); the sum of weights is TOY_SIGMA_PB.
    """
    rng = np.random.default_rng(seed)
    lo, hi = mll_range
    k = 4.0  # power law m^-k by inverse CDF, plus a Breit-Wigner Z tail
    u = rng.uniform(size=n)
    pl = (lo ** (1 - k) + u * (hi ** (1 - k) - lo ** (1 - k))) ** (1 / (1 - k))
    bw = 91.19 + 2.5 * np.tan(rng.uniform(np.arctan((lo - 91.19) / 2.5), np.arctan((hi - 91.19) / 2.5), n))
    mll = np.where(rng.uniform(size=n) < 0.3, bw, pl)
    ptll = rng.gamma(1.6, 7.0, n) + 0.05
    yll = rng.normal(0.0, 1.0, n) * 0.9
    c = rng.uniform(-1, 1, 4 * n)
    c = c[rng.uniform(0, 2, 4 * n) < 1 + c * c][:n]
    costheta = c
    phi_cs = rng.uniform(-np.pi, np.pi, n)
    phill = rng.uniform(-np.pi, np.pi, n)
    dimuon = dict(mll=mll, ptll=ptll, yll=yll, costheta=costheta, phi_cs=phi_cs, phill=phill)
    ev = {**muons_from_dimuon(**dimuon), **dimuon}
    keep = Selection(20.0, 10.0, 3.0, True, mll_range).mask(ev)
    ev = {k2: v[keep] for k2, v in ev.items()}
    for q in ("mu1_charge", "mu2_charge"):
        ev[q] = ev[q].astype(np.int32)
    ev["category"] = DEFAULT_CATEGORIES.assign(ev)
    m = len(ev["mll"])
    sign = np.where(rng.uniform(size=m) < negative_fraction, -1.0, 1.0)
    ev["weight"] = sign * TOY_SIGMA_PB / sign.sum()
    return ev


def write_toy_file(path: str, ev: dict[str, np.ndarray]) -> str:
    """Write events as a dyroot-simulate-like TTree ``events`` with uproot."""
    import uproot

    branches = {k: v for k, v in ev.items()}
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in branches.items()})
        f["events"].extend(branches)
    return path


@pytest.fixture(scope="session")
def toy_events() -> dict[str, np.ndarray]:
    """30 000 toy events (about 25 000 after the pre-selection), unit weights summing to 25 pb."""
    return toy_dimuon_events(30_000, seed=11)


@pytest.fixture(scope="session")
def toy_events_file(tmp_path_factory: pytest.TempPathFactory, toy_events: dict[str, np.ndarray]) -> str:
    """``toy_events`` in a ROOT file (TTree ``events``)."""
    pytest.importorskip("uproot")
    return write_toy_file(str(tmp_path_factory.mktemp("toy") / "toy.root"), toy_events)


def _tiny(tmp_path_factory: pytest.TempPathFactory, ev: dict[str, np.ndarray], name: str, **kw: object) -> str:
    pytest.importorskip("torch")
    from dyroot.flows import FlowConfig
    from dyroot.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundles") / name
    train_bundle(ev, out, flow=FlowConfig(layers=4, hidden=32, bins=8),
                 train=TrainConfig(epochs=3, batch_size=2048, seed=3, threads=1), progress=False,
                 sofie_batch=256, **kw)
    try:
        import onnx  # noqa: F401
    except ModuleNotFoundError:
        return str(out)
    from dyroot.export import export_bundle

    export_bundle(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, toy_events: dict[str, np.ndarray]) -> str:
    """A small unconditional bundle (spline, ONNX exported, sofie_batch 256): its directory."""
    return _tiny(tmp_path_factory, toy_events, "tiny")


@pytest.fixture(scope="session")
def tiny_conditional_bundle(tmp_path_factory: pytest.TempPathFactory, toy_events: dict[str, np.ndarray]) -> str:
    """As ``tiny_bundle``, conditioned on the one-hot category."""
    return _tiny(tmp_path_factory, toy_events, "tiny_cond", context="category")


@pytest.fixture(scope="session")
def tiny_sofie(tiny_bundle: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``tiny_bundle`` compiled with SOFIE (a dyroot.sofie.SofieModel)."""
    pytest.importorskip("sofie")
    pytest.importorskip("scipy_openblas32")
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("no g++")
    from dyroot.bundle import load_bundle
    from dyroot.sofie import compile_model, generate_header

    b = load_bundle(tiny_bundle)
    header = generate_header(b.sofie_onnx_path, tmp_path_factory.mktemp("sofie"), name="tiny_model")
    return compile_model(header)


__all__ = ["toy_dimuon_events", "write_toy_file", "TOY_SIGMA_PB", "MUON_COLUMNS"]
