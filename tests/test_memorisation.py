"""Known-answer tests of dyroot.memorisation: nearest-neighbour distances and duplicates.

A sampler of the truth must pass; a generator that resamples its training set (exactly,
with a small jitter, or for 5 % of its events) must be flagged.
"""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.memorisation import exact_duplicates, memorisation_test, nearest_distances, standardise
from dyroot.toys import ToyDimuon, jittered_resampler, resampling_generator, tilted_generator

TOY = ToyDimuon()


@pytest.fixture
def samples(rng):
    return TOY.sample(10_000, rng), TOY.sample(10_000, rng)


def _run(gen, train, held, **kw):
    t, g, h = standardise(train, gen, held, log_columns=[1])
    return memorisation_test(g, t, h, n_bootstrap=50, **kw)


def test_true_sampler_passes(rng, samples):
    train, held = samples
    res = _run(TOY.sample(10_000, rng), train, held)
    assert not res.memorised and res.verdict == "no memorisation seen"
    assert res.ratio == pytest.approx(1.0, abs=4 * res.ratio_err)  # same distances, 4 sigma (bootstrap)
    assert res.duplicates_generated == 0
    assert res.hist_generated.sum() == pytest.approx(1.0)
    assert res.to_dict()["verdict"] == "no memorisation seen"


def test_resampler_fails(rng, samples):
    train, held = samples
    res = _run(resampling_generator(train, 10_000, rng), train, held)
    assert res.memorised
    assert res.duplicates_generated == 10_000 and res.duplicates_heldout == 0
    assert res.ratio == 0.0 and res.median_generated == 0.0


@pytest.mark.parametrize("fraction", [1.0, 0.05])
def test_jittered_copies_fail(rng, samples, fraction):
    # Copies hidden under a jitter of 1 % of each column's spread: no exact duplicate, still caught.
    train, held = samples
    n_copy = int(10_000 * fraction)
    gen = np.concatenate([TOY.sample(10_000 - n_copy, rng), jittered_resampler(train, n_copy, rng, 0.01)])
    res = _run(gen, train, held)
    assert res.duplicates_generated == 0
    assert res.memorised and res.close_p_value < 1e-6
    assert res.frac_generated_close > 2 * res.frac_heldout_close


def test_broader_generator_is_not_memorisation(rng, samples):
    # A mis-modelled (tilted) generator is a fidelity problem, not memorisation.
    train, held = samples
    assert not _run(tilted_generator(TOY, 10_000, rng, 0.2), train, held).memorised


def test_false_alarm_rate():
    # 25 independent true-sampler toys at alpha = 1e-3: no alarm expected (P(any) ~ 2.5 %).
    alarms = 0
    for seed in range(25):
        rng = np.random.default_rng(500 + seed)
        train, held, gen = TOY.sample(3_000, rng), TOY.sample(3_000, rng), TOY.sample(3_000, rng)
        alarms += _run(gen, train, held).memorised
    assert alarms == 0


def test_helpers():
    t, o = standardise(np.array([[1.0, 10.0], [3.0, 1000.0]]), np.array([[2.0, 100.0]]), log_columns=[1])
    np.testing.assert_allclose(o, [[0.0, 0.0]], atol=1e-12)  # log10 midpoint of 10 and 1000 is 100
    assert exact_duplicates(np.array([[-0.0, 1.0]]), np.array([[0.0, 1.0]])) == 1  # -0.0 equals 0.0
    assert exact_duplicates(np.array([[1.0 + 1e-12, 1.0]]), np.array([[1.0, 1.0]])) == 1  # float32 precision
    np.testing.assert_allclose(nearest_distances(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [6.0, 8.0]])), [5.0])
    with pytest.raises(ValueError, match="column counts"):
        memorisation_test(np.zeros((30, 2)), np.zeros((30, 3)), np.zeros((30, 3)))
    with pytest.raises(ValueError, match="at least 20"):
        memorisation_test(np.zeros((3, 2)), np.zeros((30, 2)), np.zeros((30, 2)))
