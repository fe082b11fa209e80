"""Tests of dyroot.flows and dyroot.transforms: invertibility, log-determinants, gradients,
normalisation, the coupling masks and the pre-processing maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dyroot.exceptions import ConfigError, InputError  # noqa: E402
from dyroot.flows import ContextSpec, FlowConfig, build_flow, build_model, coupling_masks  # noqa: E402
from dyroot.transforms import FeatureTransform, fit_feature, fit_preprocessing, make_preprocessing  # noqa: E402

CONFIGS = [
    dict(architecture="spline", layers=4, hidden=16, bins=8),
    dict(architecture="spline", layers=4, hidden=16, bins=8, marginal=None),
    dict(architecture="spline", layers=3, hidden=16, bins=5, context=3),
    dict(architecture="affine", layers=4, hidden=16),
    dict(architecture="affine", layers=2, hidden=16, context=2),
]


def _randomised(cfg: dict, scale: float = 0.5):
    """A flow whose every layer is far from the identity (the last layers start at zero)."""
    flow = build_flow(FlowConfig(**cfg)).double()
    with torch.no_grad():
        for c in flow.couplings:
            last = c.conditioner.net[-1]
            last.weight.normal_(0.0, scale)
            last.bias.normal_(0.0, scale)
        if flow.marginal is not None:
            if hasattr(flow.marginal, "theta"):
                flow.marginal.theta.normal_(0.0, scale)
            else:
                flow.marginal.conditioner.net[-1].weight.normal_(0.0, scale)
                flow.marginal.conditioner.net[-1].bias.normal_(0.0, scale)
    return flow


def _context(cfg: dict, n: int):
    return torch.randn(n, cfg["context"], dtype=torch.float64) if cfg.get("context") else None


def _id(c: dict) -> str:
    return f"{c['architecture']}-ctx{c.get('context', 0)}" + ("-nomarginal" if "marginal" in c else "")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_inverse_and_logdet(cfg):
    flow = _randomised(cfg)
    z = 1.5 * torch.randn(2000, 5, dtype=torch.float64)
    z[:10, 0] = torch.linspace(-7.0, 7.0, 10)  # through the spline tails (identity beyond +-5)
    c = _context(cfg, len(z))
    with torch.no_grad():
        y, ld_gen = flow.generate_with_logdet(z, c)
        back, ld_norm = flow.normalise(y, c)
    assert torch.allclose(back, z, atol=1e-4, rtol=0)  # invertibility, atol 1e-4 (as zuko)
    assert torch.allclose(ld_gen, -ld_norm, atol=1e-4, rtol=0)  # the two directions' log-dets agree
    for i in range(5):  # log|det J| of the sampling map against autograd, atol 1e-3 (as zuko)
        ci = None if c is None else c[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v: flow.generate(v[None], ci)[0], z[i])
        assert float(ld_gen[i]) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-3)


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=_id)
def test_gradients_reach_every_parameter(cfg):
    flow = _randomised(cfg, 0.1).float()
    y = torch.randn(256, 5)
    loss = -flow.log_prob(y, None if not cfg.get("context") else torch.randn(256, cfg["context"])).mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_density_is_normalised():
    """The density integrates to the sampling probability: over the box [-2, 2]^5, a uniform
    Monte-Carlo integral of p equals the fraction of flow samples in the box (within 10 %)."""
    flow = _randomised(CONFIGS[0], 0.2)
    g = torch.Generator().manual_seed(5)
    u = 4.0 * torch.rand(100_000, 5, generator=g, dtype=torch.float64) - 2.0
    with torch.no_grad():
        integral = float(torch.exp(flow.log_prob(u)).mean()) * 4.0**5
        y = flow.generate(torch.randn(100_000, 5, generator=g, dtype=torch.float64))
    fraction = float((y.abs() < 2.0).all(dim=-1).double().mean())
    assert 0.05 < fraction < 0.95  # a non-trivial box
    assert integral == pytest.approx(fraction, rel=0.1)


def test_new_flow_is_identity():
    flow = build_flow(FlowConfig(layers=2, hidden=8, bins=4))
    z = torch.randn(100, 5)
    assert torch.allclose(flow.generate(z), z, atol=1e-5)  # zero-initialised last layers


def test_masks_split_every_pair():
    masks = coupling_masks(5, 6)
    for i in range(5):
        for j in range(i + 1, 5):
            assert any((i in m) != (j in m) for m in masks), (i, j)
    for a, b in zip(masks[::2], masks[1::2]):
        assert sorted(a + b) == list(range(5))  # each pair of layers transforms every coordinate once


def test_config_errors_and_round_trip():
    with pytest.raises(ConfigError, match="architecture"):
        FlowConfig(architecture="maf")
    with pytest.raises(ConfigError, match="too small"):
        FlowConfig(bins=1)
    with pytest.raises(ConfigError, match="marginal"):
        FlowConfig(marginal=7)
    cfg = FlowConfig(layers=4, context=2)
    assert all(0 not in m for m in cfg.masks)  # mll (the marginal) conditions every coupling
    assert FlowConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        FlowConfig.from_dict({**cfg.to_dict(), "colour": 1})
    flow = build_flow(FlowConfig(layers=2, context=2))
    with pytest.raises(ConfigError, match="conditional"):
        flow.generate(torch.randn(3, 5))


# ----------------------------------------------------------------------------------------------
# Pre-processing


def _physical(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    k, lo, hi = 4.0, 105.0, 170.0
    u = rng.uniform(size=n)
    mll = (lo ** (1 - k) + u * (hi ** (1 - k) - lo ** (1 - k))) ** (1 / (1 - k))
    return {"mll": mll, "ptll": rng.gamma(1.5, 8.0, n) + 0.01, "yll": rng.normal(0, 1.2, n),
            "costheta": rng.uniform(-1, 1, n), "phi_cs": rng.uniform(-np.pi, np.pi, n)}


@pytest.mark.parametrize("preset", ["probit", "logit", "none"])
def test_preprocessing_round_trip_and_logdet(rng, preset):
    x = _physical(rng, 5000)
    specs = fit_preprocessing(x, preset=preset, mll_bounds=(105.0, 170.0))
    pre = make_preprocessing(specs)
    xt = torch.from_numpy(np.stack([x[k] for k in ("mll", "ptll", "yll", "costheta", "phi_cs")], 1))
    with torch.no_grad():
        y, ld = pre(xt)
        back = pre.inverse(y)
    scale = xt.std(0)
    # float64 round trip; the probit tails lose digits only where u is within 1e-7 of 0 or 1
    assert torch.max(torch.abs(back - xt) / scale) < 1e-6
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: pre(v[None])[0][0], xt[i])
        assert float(ld[i]) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-6)


def test_bounded_rapidity_preset(rng):
    """probit_y treats y_mumu as bounded by the muons' |eta| cut: the dimuon rapidity lies between
    the muons' rapidities (a mediant of e^{2y_i}) and |y_mu| <= |eta_mu|, so the bound is exact."""
    from dyroot.features import dimuon_from_muons

    n = 20_000
    pt, eta = rng.uniform(10, 200, (2, n)), rng.uniform(-3, 3, (2, n))
    phi = rng.uniform(-np.pi, np.pi, (2, n))
    d = dimuon_from_muons(pt[0], eta[0], phi[0], np.ones(n), pt[1], eta[1], phi[1], -np.ones(n))
    assert np.all(np.abs(d["yll"]) <= np.maximum(np.abs(eta[0]), np.abs(eta[1])) + 1e-12)
    x = _physical(rng, 5000)
    x["yll"] = np.clip(x["yll"], -2.999, 2.999)
    specs = fit_preprocessing(x, preset="probit_y", mll_bounds=(105.0, 170.0), bounds={"yll": (-3.0, 3.0)})
    assert specs[2].kind == "probit" and specs[2].params == {"lo": -3.0, "hi": 3.0}
    pre = make_preprocessing(specs)
    xt = torch.from_numpy(np.stack([x[k] for k in ("mll", "ptll", "yll", "costheta", "phi_cs")], 1))
    with torch.no_grad():
        back = pre.inverse(pre(xt)[0])
    assert torch.max(torch.abs(back - xt)) < 1e-6
    with pytest.raises(InputError, match="needs bounds"):
        fit_preprocessing(x, preset="probit_y", mll_bounds=(105.0, 170.0))


def test_probit_power_gaussianises_a_power_law(rng):
    x = _physical(rng, 100_000)
    spec = fit_feature("mll", x["mll"], kind="probit_power", bounds=(105.0, 170.0))
    assert spec.params["k"] == pytest.approx(4.0, abs=0.05)  # the generated exponent
    y, _ = make_preprocessing([spec])(torch.from_numpy(x["mll"][:, None]))
    assert float(y.mean()) == pytest.approx(0.0, abs=0.02)  # N(0, 1): mean 0 (error 0.003)
    assert float(y.std()) == pytest.approx(1.0, abs=0.02)


def test_inverse_stays_in_bounds_for_extreme_inputs():
    specs = [FeatureTransform("mll", "probit_power", {"lo": 105.0, "hi": 170.0, "k": 4.2}),
             FeatureTransform("ptll", "log", {"offset": 0.0, "mean": 2.0, "std": 1.0}),
             FeatureTransform("yll", "standard", {"mean": 0.0, "std": 1.0}),
             FeatureTransform("costheta", "probit", {"lo": -1.0, "hi": 1.0}),
             FeatureTransform("phi_cs", "logit", {"lo": -math.pi, "hi": math.pi})]
    pre = make_preprocessing(specs)
    y = torch.tensor([[-9.0] * 5, [9.0] * 5, [0.0] * 5], dtype=torch.float32)
    x = pre.inverse(y)
    assert torch.all(torch.isfinite(x))
    assert torch.all((x[:, 0] >= 105.0) & (x[:, 0] <= 170.0))  # mass window edges are exact
    assert torch.all(x[:, 1] > 0) and torch.all(x[:, 3].abs() <= 1.0) and torch.all(x[:, 4].abs() <= math.pi + 1e-6)


def test_fit_feature_errors(rng):
    with pytest.raises(InputError, match="outside"):
        fit_feature("mll", np.array([100.0, 120.0]), kind="probit_power", bounds=(105.0, 170.0))
    with pytest.raises(InputError, match="offset"):
        fit_feature("ptll", np.array([0.0, 3.0]), kind="log")
    with pytest.raises(InputError, match="non-positive"):
        fit_feature("yll", np.array([1.0, 2.0]), np.array([1.0, -2.0]), kind="standard")
    with pytest.raises(InputError, match="preset"):
        fit_preprocessing(_physical(rng, 10), preset="fancy")


def test_weighted_fit_uses_negative_weights(rng):
    """Moments with signed weights: a +1/-1 pair of identical components cancels exactly."""
    a = rng.normal(0.0, 1.0, 50_000)
    b = rng.normal(3.0, 0.5, 20_000)
    x = np.concatenate([a, b, b])
    w = np.concatenate([np.ones_like(a), np.ones_like(b), -np.ones_like(b)])
    spec = fit_feature("yll", x, w, kind="standard")
    assert spec.params["mean"] == pytest.approx(float(a.mean()), abs=1e-9)
    assert spec.params["std"] == pytest.approx(float(a.std()), rel=1e-9)


def test_model_context_spec():
    spec = ContextSpec("variables", ("njets",), mean=(1.5,), std=(0.5,))
    assert ContextSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="mean and std"):
        ContextSpec("variables", ("njets",))
    pre = [FeatureTransform(n, "standard", {"mean": 0.0, "std": 1.0})
           for n in ("mll", "ptll", "yll", "costheta", "phi_cs")]
    with pytest.raises(ConfigError, match="dimension"):
        build_model(FlowConfig(layers=2), pre, spec)
    model = build_model(FlowConfig(layers=2, context=1), pre, spec)
    c = torch.tensor([[1.5], [2.0]])
    assert torch.allclose(model.standardise_context(c), torch.tensor([[0.0], [1.0]]))
