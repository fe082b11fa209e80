"""Known-answer tests of dyroot.twosample: chi2, KS and the classifier two-sample test.

Same-distribution toys must give calibrated statistics; a generator whose mass
spectrum is tilted (:func:`dyroot.toys.tilted_generator`) must fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dyroot.toys import ToyDimuon, tilted_generator
from dyroot.twosample import (
    binned_chi2,
    classifier_two_sample,
    delong_auc_variance,
    kish_size,
    ks_two_sample,
    roc_auc,
)

TOY = ToyDimuon()
EDGES = np.linspace(110.0, 160.0, 51)


def _hist(x, w=None):
    return np.histogram(x, EDGES, weights=w)[0], np.histogram(x, EDGES, weights=None if w is None else w * w)[0]


def test_chi2_is_calibrated_on_identical_distributions():
    # 200 pairs (1e4 generated, 5e3 reference) of the same truth: mean chi2/ndf = 1 within 0.06
    # (the standard error of the mean is sqrt(2/49)/sqrt(200) = 0.014), p-values roughly uniform.
    ratios, pvals = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a, b = TOY.sample_mll(10_000, rng), TOY.sample_mll(5_000, rng)
        res = binned_chi2(np.histogram(a, EDGES)[0], np.histogram(b, EDGES)[0])
        ratios.append(res.chi2 / res.ndf)
        pvals.append(res.p_value)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.06)
    assert 0.01 <= np.mean(np.array(pvals) < 0.05) <= 0.10  # 5 % expected; binomial sd 1.5 %


def test_chi2_weights_constant_scale_invariant(rng):
    a, b = TOY.sample_mll(20_000, rng), TOY.sample_mll(8_000, rng)
    plain = binned_chi2(*(np.histogram(x, EDGES)[0] for x in (a, b)))
    ca, wa = _hist(a)
    cb, wb = _hist(b, np.full(b.size, 0.37))  # e.g. sigma/N in pb per event
    weighted = binned_chi2(ca, cb, wa, wb)
    assert weighted.chi2 == pytest.approx(plain.chi2, rel=1e-9)
    np.testing.assert_allclose(weighted.pull, plain.pull, rtol=0, atol=1e-9)
    assert weighted.ndf == 49
    assert np.nansum(weighted.f1) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="same edges"):
        binned_chi2(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        binned_chi2(np.zeros(3), np.ones(3))


def test_biased_generator_fails_true_generator_passes(rng):
    ref = TOY.sample_mll(50_000, rng)
    good = TOY.sample_mll(100_000, rng)
    bad = tilted_generator(TOY, 100_000, rng, epsilon=0.1)[:, 0]
    hr = np.histogram(ref, EDGES)[0]
    ok, ko = binned_chi2(np.histogram(good, EDGES)[0], hr), binned_chi2(np.histogram(bad, EDGES)[0], hr)
    assert ok.p_value > 1e-3 and ko.p_value < 1e-3  # a 10 % tilt over 50 GeV is seen by chi2 and KS
    assert ks_two_sample(good, ref).p_value > 1e-3
    assert ks_two_sample(bad, ref).p_value < 1e-3
    # the pull panel shows the tilt: negative at low mass, positive at high mass
    assert ko.pull[:10].mean() < 0 < ko.pull[-10:].mean()


def test_ks_matches_scipy_and_handles_weights(rng):
    a, b = rng.normal(size=3000), rng.normal(0.05, 1.0, size=2000)
    mine = ks_two_sample(a, b)
    ref = stats.ks_2samp(a, b, method="exact")
    assert mine.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert mine.p_value == pytest.approx(ref.pvalue, rel=0.05)  # exact vs Kolmogorov at n1 n2 / (n1 + n2)
    w = ks_two_sample(a, b, np.full(a.size, 2.0), np.full(b.size, 0.5))
    assert w.statistic == pytest.approx(mine.statistic, abs=1e-12) and w.n1 == pytest.approx(3000)
    assert kish_size(np.array([1.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-empty"):
        ks_two_sample(np.array([]), b)


def test_auc_and_delong_against_toys():
    # Scores N(0,1) vs N(0.5,1): AUC = Phi(0.5/sqrt(2)) = 0.6382; DeLong's sigma vs the toy spread.
    aucs, sig = [], []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        pos, neg = rng.normal(0.5, 1.0, 800), rng.normal(0.0, 1.0, 600)
        auc, var = delong_auc_variance(pos, neg)
        assert auc == pytest.approx(roc_auc(pos, neg), abs=1e-12)
        aucs.append(auc)
        sig.append(np.sqrt(var))
    assert np.mean(aucs) == pytest.approx(stats.norm.cdf(0.5 / np.sqrt(2)), abs=3 * np.std(aucs) / np.sqrt(150))
    assert np.mean(sig) == pytest.approx(np.std(aucs), rel=0.15)  # 150 toys: spread known to ~6 %


def test_weighted_auc_equals_repeated_events(rng):
    pos, neg = rng.normal(0.3, 1.0, 300), rng.normal(0.0, 1.0, 200)
    w = rng.integers(1, 4, size=neg.size).astype(float)
    assert roc_auc(pos, neg, None, w) == pytest.approx(roc_auc(pos, np.repeat(neg, w.astype(int))), abs=1e-12)
    assert roc_auc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count one half


def _features(x):
    y = x.copy()
    y[:, 1] = np.log(y[:, 1])  # log pT: the classifier sees a well-scaled feature
    return y


@pytest.mark.slow
def test_classifier_two_sample(rng):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    ref = _features(TOY.sample(20_000, rng))
    same = classifier_two_sample(_features(TOY.sample(20_000, rng)), ref, epochs=6, seed=1, features=list("abcde"))
    assert abs(same.z) < 3  # indistinguishable: AUC = 0.5 within 3 sigma (DeLong)
    assert same.method == "delong" and same.n_test == 20_000 and len(same.loss_history) == 6
    bad = classifier_two_sample(_features(tilted_generator(TOY, 20_000, rng, 0.3)), ref, epochs=6, seed=1)
    assert bad.z > 5 and bad.p_value < 1e-6  # a 30 % tilt of the mass spectrum is learned
    weighted = classifier_two_sample(_features(TOY.sample(5_000, rng)), ref[:5_000], epochs=3, seed=1, n_bootstrap=50,
                                     reference_weights=rng.uniform(0.5, 1.5, 5_000))
    assert weighted.method == "bootstrap" and 0.0 < weighted.auc_err < 0.05
    assert weighted.to_dict()["roc_fpr"][0] == 0.0
    with pytest.raises(ValueError, match="same columns"):
        classifier_two_sample(ref[:100, :2], ref[:100])
