"""Known-answer tests of dyroot.amplification (quantile MSE and ensemble variance).

The truth is :class:`dyroot.toys.ToyDimuon`'s falling exponential in 110-160 GeV, whose
CDF is analytic. A sampler of the truth must show G = n_gen / n_train (growing without
bound); a generator that resamples its training set must show G <= 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.amplification import (
    default_n_gen_grid,
    ensemble_amplification,
    expected_mse,
    n_equivalent,
    quantile_amplification,
    quantile_edges,
    quantile_mse,
    watts_crow_bound,
)
from dyroot.toys import ToyDimuon, resampling_generator

TOY = ToyDimuon()
N_TRAIN = 10_000


def test_expected_mse_matches_iid_toys(rng):
    # 400 samples of 2000 true events: the mean MSE is (1 - 1/Nq)/(Nq n) within 4 standard errors.
    edges = quantile_edges(ppf=TOY.mll_ppf, n_quantiles=20)
    mses = [quantile_mse(TOY.sample_mll(2000, rng), edges) for _ in range(400)]
    expected = float(expected_mse(2000, 20))
    assert np.mean(mses) == pytest.approx(expected, abs=4 * np.std(mses) / np.sqrt(len(mses)))
    assert float(n_equivalent(expected, 20)) == pytest.approx(2000, rel=1e-12)


def test_quantile_edges_from_sample_and_weights(rng):
    x = TOY.sample_mll(200_000, rng)
    e_ppf = quantile_edges(ppf=TOY.mll_ppf, n_quantiles=10)
    e_smp = quantile_edges(x, n_quantiles=10)
    assert np.isinf(e_smp[0]) and np.isinf(e_smp[-1])
    np.testing.assert_allclose(e_smp[1:-1], e_ppf[1:-1], atol=0.15)  # GeV: quantile noise of 2e5 events
    # weight 2 on every event changes nothing; integer weights act as repeated events
    np.testing.assert_allclose(quantile_edges(x, n_quantiles=10, weights=np.full(x.size, 2.0)), e_smp, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="exactly one"):
        quantile_edges(x, ppf=TOY.mll_ppf)
    with pytest.raises(ValueError, match="at least 2"):
        quantile_edges(x, n_quantiles=1)


def test_true_sampler_gain_grows_with_n_gen(rng):
    edges = quantile_edges(ppf=TOY.mll_ppf, n_quantiles=50)
    grid = [1_000, 10_000, 100_000, 200_000]
    res = quantile_amplification([TOY.sample_mll(200_000, rng)], edges, n_train=N_TRAIN, n_gen=grid)
    expected = np.array(grid) / N_TRAIN  # i.i.d. true events are worth themselves
    sigma = 0.5 * (res.gain_hi - res.gain_lo)
    assert np.all(np.abs(res.gain - expected) < 4 * sigma)  # 4 sigma, sigma from the chunk spread / chi2
    assert np.all(np.diff(res.gain) > 0)
    assert res.g_eff_limit95 > 10  # beta compatible with 0: N_eff far beyond N_train
    d = res.to_dict()
    assert d["n_quantiles"] == 50 and len(d["gain"]) == 4


def test_resampler_gain_at_most_one(rng):
    # Five "models", each resampling its own training set of 1e4: E[MSE(n)] = k/n + k/N_train,
    # i.e. n_equiv = 1/(1/n + 1/N_train) <= N_train.
    edges = quantile_edges(ppf=TOY.mll_ppf, n_quantiles=100)
    samples = [resampling_generator(TOY.sample_mll(N_TRAIN, rng), 100_000, rng) for _ in range(5)]
    grid = np.array([1_000, 10_000, 100_000])
    res = quantile_amplification(samples, edges, n_train=N_TRAIN, n_gen=grid)
    expected = grid / (grid + N_TRAIN)
    sigma = np.maximum(res.gain_hi - res.gain, res.gain - res.gain_lo)
    assert np.all(np.abs(res.gain - expected) < 4 * sigma)  # 4 sigma incl. the model-to-model spread
    assert np.all(res.gain < 1 + 3 * sigma)
    assert res.g_eff < 1 + 3 * (res.g_eff_hi - res.g_eff)  # asymptote: G_eff = 1 within 3 sigma
    assert res.g_eff > 0.5


def test_truth_sample_edges_are_corrected(rng):
    # Edges from 5e4 truth events add k/n_truth to every MSE; with n_truth given, G(n) = n/N_train again.
    n_truth = 50_000
    edges = quantile_edges(TOY.sample_mll(n_truth, rng), n_quantiles=50)
    sample = TOY.sample_mll(200_000, rng)
    res = quantile_amplification([sample], edges, n_train=N_TRAIN, n_gen=[5_000], n_truth=n_truth)
    naive = quantile_amplification([sample], edges, n_train=N_TRAIN, n_gen=[5_000])
    sigma = 0.5 * (res.gain_hi[0] - res.gain_lo[0])
    # corrected within 4 sigma of 0.5; the uncorrected value is biased to 0.5 / (1 + 5000/50000) = 0.4545
    # up to the realised fluctuation of the truth edges (relative sqrt(2/49) of the edge term)
    assert res.gain[0] == pytest.approx(0.5, abs=4 * sigma)
    assert naive.gain[0] < res.gain[0]


def test_ensemble_true_members_and_grid(rng):
    edges = np.linspace(110.0, 160.0, 26)
    members = [TOY.sample_mll(50_000, rng) for _ in range(6)]
    res = ensemble_amplification(members, edges, n_train=N_TRAIN)
    assert res.a / res.a_expected == pytest.approx(1.0, abs=4 * res.a_err / res.a_expected)  # binomial closure, 4 sigma
    assert abs(res.c) < 4 * res.c_err  # no model variance, 4 sigma
    assert res.gain_limit95 > 5  # with 5e4 events per member, N_eff > 5 N_train at 95 % CL
    g = res.gain_at([1e3, 1e4, 1e5])
    assert np.all(np.diff(g) > 0)
    assert list(res.n_gen) == default_n_gen_grid(min(len(m) for m in members))
    assert res.to_dict()["n_members"] == 6


@pytest.mark.parametrize("mode", ["bootstrap", "disjoint"])
def test_ensemble_resamplers_gain_one(rng, mode):
    edges = np.linspace(110.0, 160.0, 26)
    train = TOY.sample_mll(N_TRAIN, rng)
    members = []
    for _ in range(6):
        replica = resampling_generator(train, N_TRAIN, rng) if mode == "bootstrap" else TOY.sample_mll(N_TRAIN, rng)
        members.append(resampling_generator(replica, 60_000, rng))
    res = ensemble_amplification(members, edges, n_train=N_TRAIN)
    sigma = res.gain - res.gain_lo
    assert res.gain == pytest.approx(1.0, abs=4 * sigma)  # a resampler is worth its training set, 4 sigma
    assert res.gain < 1 + 3 * sigma


@pytest.mark.parametrize("k", [4, 8])
def test_ensemble_uncertainty_is_calibrated(k):
    # The uncertainty of c: pulls of 25 toy ensembles of resamplers (c known: A / N_train) and of
    # 25 of true samplers (c = 0). Expected: mean 0 (sd 0.14 for 50 pulls), std 1 (sd ~0.1), no long tails.
    edges = np.linspace(110.0, 160.0, 11)
    pulls = []
    for seed in range(25):
        rng = np.random.default_rng(1000 * k + seed)
        members = [resampling_generator(TOY.sample_mll(1_000, rng), 10_000, rng) for _ in range(k)]
        res = ensemble_amplification(members, edges, n_train=1_000, n_gen=[200, 10_000])
        pulls.append((res.c - res.a_expected / 1_000) / res.c_err)
        true = ensemble_amplification([TOY.sample_mll(10_000, rng) for _ in range(k)], edges, n_train=1_000,
                                      n_gen=[200, 10_000])
        pulls.append(true.c / true.c_err)
    assert abs(np.mean(pulls)) < 0.5
    assert 0.7 < np.std(pulls) < 1.35
    assert np.max(np.abs(pulls)) < 4.0


def test_errors_are_explained(rng):
    edges = np.linspace(110.0, 160.0, 11)
    with pytest.raises(ValueError, match="at least 3 ensemble members"):
        ensemble_amplification([TOY.sample_mll(100, rng)] * 2, edges, n_train=100)
    with pytest.raises(ValueError, match="smallest"):
        quantile_amplification([TOY.sample_mll(100, rng)], quantile_edges(ppf=TOY.mll_ppf, n_quantiles=5),
                               n_train=100, n_gen=[1000])
    assert watts_crow_bound(1e6) == pytest.approx(1e9)
