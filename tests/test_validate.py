"""Tests of dyroot.validate / dyroot validate: the orchestration, with known answers.

Known-answer "bundles" honour the bundle contract (``config``, ``hash``, ``sample``):

* :class:`ToyBundle` maps the noise to :class:`dyroot.toys.ToyDimuon` events by exact
  inverse CDFs: a perfect generator. Fidelity, memorisation and streams must pass.
* ``ToyBundle(slope=...)`` with another mass slope: a biased generator; fidelity must fail.
* :class:`ResamplingBundle` returns training events picked by the noise: a generator
  that memorised its training set; memorisation must fail and G must be <= 1.

The CLI runs on the model stage's ``tiny_bundle`` and toy files (small N).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dyroot.features import DEFAULT_CATEGORIES, FLOW_FEATURES, Selection, muons_from_dimuon
from dyroot.toys import ToyDimuon

torch = pytest.importorskip("torch")

WINDOW = dict(lo=100.0, hi=170.0)


def _events(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ev = {f: x[:, k].astype(np.float64) for k, f in enumerate(FLOW_FEATURES)}
    ev["phill"] = rng.uniform(-np.pi, np.pi, len(x))
    ev.update(muons_from_dimuon(**{k: ev[k] for k in ("mll", "ptll", "yll", "costheta", "phi_cs", "phill")}))
    ev["weight"] = np.full(len(x), 0.5)
    return ev


class ToyBundle:
    """A perfect (or, with another slope, a biased) generator of ToyDimuon events."""

    def __init__(self, slope: float = 20.0) -> None:
        from scipy import stats

        self.toy = ToyDimuon(slope=slope, **WINDOW)
        self.config = {"features": list(FLOW_FEATURES), "selection": Selection().to_dict(),
                       "categories": DEFAULT_CATEGORIES.to_list(), "context": None, "sigma_pb": 1.0}
        self.hash, self.path = f"toy-{slope}", None
        grid = np.linspace(-1.0, 1.0, 20001)
        self._c_grid, self._c_cdf = grid, (grid + grid**3 / 3 + 4 / 3) / (8 / 3)  # CDF of 1 + c^2
        self._gamma = stats.gamma(1.5, scale=self.toy.pt_scale)

    def sample(self, noise, context=None):
        from scipy.special import ndtr

        z = noise.double().numpy()
        u = ndtr(z)
        x = np.column_stack([self.toy.mll_ppf(u[:, 0]), self._gamma.ppf(u[:, 1]), self.toy.y_width * z[:, 2],
                             np.interp(u[:, 3], self._c_cdf, self._c_grid), np.pi * (2 * u[:, 4] - 1)])
        return torch.from_numpy(x).float()


class ResamplingBundle(ToyBundle):
    """Returns the training event whose index is set by the first noise component."""

    def __init__(self, train_x: np.ndarray) -> None:
        super().__init__()
        self.train_x = train_x.astype(np.float32)

    def sample(self, noise, context=None):
        from scipy.special import ndtr

        idx = np.minimum((ndtr(noise[:, 0].double().numpy()) * len(self.train_x)).astype(int), len(self.train_x) - 1)
        return torch.from_numpy(self.train_x[idx])


@pytest.fixture(scope="module")
def toy_samples():
    rng = np.random.default_rng(21)
    truth = ToyDimuon(**WINDOW)
    train_x = truth.sample(40_000, rng)
    return {"train_x": train_x, "train": _events(train_x, rng), "ref": _events(truth.sample(40_000, rng), rng)}


def _config(**kw):
    from dyroot.validate import ValidationConfig

    base = dict(n_generate=40_000, classifier_epochs=3, classifier_max_events=20_000, stream_shards=4,
                stream_shard_events=5_000, memorisation_max_events=20_000, spurious=False, batch_size=16_384)
    base.update(kw)
    return ValidationConfig(**base)


def test_perfect_generator_passes_and_report(toy_samples, tmp_path):
    from dyroot.validate import run_validation
    from dyroot.validate_report import build_report

    lines = []
    res = run_validation(ToyBundle(), toy_samples["ref"], training=toy_samples["train"], config=_config(),
                         log=lines.append)
    v = res.verdicts()
    assert v["fidelity"] is True, res.fidelity["failing"]
    assert v["memorisation"] is True and v["streams"] is True, res.to_dict()["streams"]
    assert res.streams["template_rerun"].identical and res.streams["template_shards"].identical
    assert any("fidelity" in line for line in lines)
    # G grows with N_gen for true events: G(n) = n / N_train within 4 sigma at every probed size
    q = res.amplification["per_category"]["inclusive"]["quantile"]
    n_train = res.amplification["per_category"]["inclusive"]["n_train"]
    sigma = np.maximum(q.gain_hi - q.gain, q.gain - q.gain_lo)
    assert np.all(np.abs(q.gain - q.n_gen / n_train) < 4 * np.where(np.isfinite(sigma), sigma, np.inf))
    assert np.all(np.diff(q.gain) > 0)
    rep = build_report(res, subtitle="test")
    rep.attach("validation.json", res.to_dict())
    out = rep.write(tmp_path / "report")
    data = json.loads((out / "report.json").read_text())
    titles = [s["title"] for s in data["sections"]]
    assert titles[:2] == ["Summary", "Inputs"] and any(t.startswith("Memorisation") for t in titles)
    figs = [f for s in data["sections"] for f in s["figures"]]
    assert len(figs) >= 10 and all((out / f["png"]).is_file() and (out / f["json"]).is_file() for f in figs)
    fid = json.loads((out / "figures" / "fidelity_mll_inclusive.json").read_text())
    assert len(fid["data"]["edges"]) == 51 and len(fid["data"]["pull"]) == 50  # 1-GeV bins, 110-160 GeV
    assert "PASS" in (out / "index.html").read_text()
    assert json.loads((out / "validation.json").read_text())["verdicts"]["fidelity"] is True


def test_biased_generator_fails_fidelity(toy_samples):
    from dyroot.validate import run_validation

    res = run_validation(ToyBundle(slope=17.0), toy_samples["ref"], training=toy_samples["train"],
                         config=_config(streams=False, classifier=False))
    assert res.verdicts()["fidelity"] is False
    assert any(f.startswith("mll (inclusive)") for f in res.fidelity["failing"])


def test_resampler_fails_memorisation_and_gain_at_most_one(toy_samples):
    from dyroot.validate import run_validation

    bundle = ResamplingBundle(toy_samples["train_x"])
    res = run_validation(bundle, toy_samples["ref"], training=toy_samples["train"],
                         config=_config(streams=False, classifier=False, n_generate=100_000))
    mem = res.memorisation["result"]
    assert mem.memorised and mem.duplicates_generated == mem.n_generated
    inc = res.amplification["per_category"]["inclusive"]
    q = inc["quantile"]
    # A resampler's events are worth at most the training set: G <= 1 within 3 sigma at every size,
    # including the asymptote (one model: its own training sample's luck, relative sqrt(2/(Nq-1)), is included
    # as 3 sigma of that on top).
    assert np.all(q.gain < 1 + 3 * (q.gain_hi - q.gain))
    assert q.g_eff < 1 + 3 * (q.g_eff_hi - q.g_eff) + 3 * np.sqrt(2 / (q.n_quantiles - 1))


def test_reference_equal_to_training_is_refused(tmp_path):
    pytest.importorskip("uproot")
    from dyroot.exceptions import InputError
    from dyroot.validate import run_validation

    rng = np.random.default_rng(3)
    ev = _events(ToyDimuon(**WINDOW).sample(2_000, rng), rng)
    import uproot

    path = tmp_path / "same.root"
    cols = {k: v for k, v in ev.items()}
    cols["mu1_charge"] = cols["mu1_charge"].astype(np.int32)
    cols["mu2_charge"] = cols["mu2_charge"].astype(np.int32)
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in cols.items()})
        f["events"].extend(cols)
    with pytest.raises(InputError, match="trained on"):
        run_validation(ToyBundle(), str(path), training=str(path), config=_config())


def test_config_is_checked():
    from dyroot.exceptions import ConfigError

    with pytest.raises(ConfigError, match="2 problems"):
        _config(alpha=2.0, n_quantiles=1).check()


@pytest.mark.slow
def test_cli_on_tiny_bundle(tiny_bundle, toy_events_file, tmp_path):
    """`dyroot validate` end to end on the model stage's tiny bundle (a poor 3-epoch model)."""
    from _fixtures_model import toy_dimuon_events, write_toy_file

    from dyroot.cli import main

    held = write_toy_file(str(tmp_path / "heldout.root"), toy_dimuon_events(30_000, seed=99))
    out = tmp_path / "report"
    argv = [tiny_bundle, "--reference", held, "--training", toy_events_file, "--output", str(out), "--events", "30000",
            "--classifier-epochs", "2", "--no-spurious", "--quiet"]
    rc = main(["validate", *argv])
    assert rc in (0, 1)  # 1: a verdict failed (a 3-epoch model may well fail fidelity); the report is written
    data = json.loads((out / "validation.json").read_text())
    assert data["inputs"]["n_generated"] == 30_000 and data["inputs"]["training"]["n_training"] > 1000
    assert (out / "index.html").is_file()
    assert main(["validate", *argv]) == 2  # the report exists: refused at once without --force


@pytest.mark.root
@pytest.mark.slow
def test_spurious_split_with_perfect_ensemble(toy_samples):
    """The S_spur uncertainty split: a perfect ensemble has no model uncertainty beyond its statistics."""
    pytest.importorskip("ROOT")
    from dyroot.validate import run_validation

    cfg = _config(streams=False, classifier=False, spurious=True, spurious_categories=("central_lowpt",),
                  spurious_masses=(120.0, 125.0, 130.0), spurious_functions=("Epoly2",), ensemble_events=100_000,
                  template_events=200_000)
    res = run_validation(ToyBundle(), toy_samples["ref"], training=toy_samples["train"],
                         ensemble=[ToyBundle() for _ in range(4)], config=cfg)
    d = res.spurious["per_category"]["central_lowpt"]
    assert d["function"] == "Epoly2" and d["n_members_fitted"] == 4
    # Members are exact samplers: their spread is their own template statistics; sigma_model = 0 within 3 sigma.
    assert d["sigma_model"] < 3 * d["sigma_model_err"]
    # Delta_MC of a template scales as 1/sqrt(N): members have half the nominal's events.
    assert np.mean(d["member_delta_mc"]) == pytest.approx(d["delta_mc"] * np.sqrt(2.0), rel=0.15)
    # The training-size sample (~2e4 events in all categories) has a much larger statistical part.
    assert d["delta_mc_train"] > 1.5 * d["delta_mc"]
    assert res.spurious["rows"][0][0] == "central_lowpt"
