"""Known-answer tests of dyroot.streams_check: independent, reproducible random streams.

dyroot's Philox streams must pass; streams that ignore the shard offset, overlap, mix a
common component into every shard, or are not reproducible must each be caught.
"""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.streams_check import (
    bitwise_equal,
    duplicate_rows,
    merge_sparse_bins,
    paired_correlation,
    shard_correlation,
    shared_rows,
    stream_checks,
)


def _philox(seed, first, n):
    from dyroot.random import noise

    return noise(seed, first, n).normals


def test_dyroot_streams_pass():
    res = stream_checks(seed=12345, other_seed=12346, n_shards=6, shard_size=10_000)
    assert res.passed, res.to_dict()
    assert res.shared_between_shards == 0 and res.shared_between_keys == 0 and res.duplicates_within == 0
    assert abs(res.correlation.rho) < 4 * res.correlation.rho_err
    assert res.reproducible.identical and res.to_dict()["passed"] is True


def test_stream_ignoring_the_shard_offset_is_caught():
    res = stream_checks(n_shards=4, shard_size=5_000, noise_fn=lambda s, f, n: _philox(s, 0, n))
    assert not res.passed
    assert res.shared_between_shards == 6 * 5_000  # every pair of 4 shards shares every vector
    assert res.correlation.rho == pytest.approx(1.0) and res.correlation.p_value < 1e-6


def test_overlapping_shards_are_caught():
    res = stream_checks(n_shards=4, shard_size=5_000, noise_fn=lambda s, f, n: _philox(s, f // 2, n))
    assert not res.passed and res.shared_between_shards == 3 * 2_500


def test_common_component_is_caught():
    # Each shard = 0.5 * (a common stream) + sqrt(0.75) * (its own): pairwise correlation 0.25.
    def mixed(seed, first, n):
        common = _philox(seed, 0, n).astype(np.float64)
        own = _philox(seed + 1, first, n).astype(np.float64)
        return (0.5 * common + np.sqrt(0.75) * own).astype(np.float32)

    res = stream_checks(n_shards=4, shard_size=5_000, noise_fn=mixed)
    assert not res.passed and res.shared_between_shards == 0
    assert res.paired_p_value < 1e-6 and res.paired_zmax > 20  # r = 0.25 with sqrt(n d) = 158: z ~ 40


def test_irreproducible_stream_is_caught():
    gen = np.random.default_rng(3)
    res = stream_checks(n_shards=3, shard_size=2_000,
                        noise_fn=lambda s, f, n: gen.standard_normal((n, 5)).astype(np.float32))
    assert not res.passed and not res.reproducible.identical


def test_shard_correlation_is_calibrated_and_measures_rho():
    # Independent multinomial shards: two-sided p < 0.05 in about 5 % of 300 toys.
    pvals = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        pvals.append(shard_correlation(rng.multinomial(5_000, np.full(40, 1 / 40), size=6)).p_value)
    assert 0.02 <= np.mean(np.array(pvals) < 0.05) <= 0.09  # binomial sd 1.3 %
    # Equicorrelated shards h_i = A + B_i with Var A / Var h = 0.3: rho_hat = 0.3 within 4 sigma.
    rng = np.random.default_rng(7)
    common = rng.poisson(0.3 * 400, size=60)
    shards = common + rng.poisson(0.7 * 400, size=(10, 60))
    res = shard_correlation(shards)
    assert res.rho == pytest.approx(0.3, abs=4 * res.rho_err)
    # A pair of shards sharing half of their events stands out in the residual matrix (a common
    # mode of ALL shards cancels in the residuals there; the chi2 above sees it).
    pair = rng.poisson(400, size=(8, 60)).astype(float)
    shared = rng.poisson(200, size=60)
    pair[0], pair[1] = shared + rng.poisson(200, 60), shared + rng.poisson(200, 60)
    m = shard_correlation(pair)
    assert m.matrix[0, 1] > m.expected_offdiag + 3 * m.offdiag_err  # expected ~0.5, one entry's sd 0.13
    with pytest.raises(ValueError, match="at least 2 shards"):
        shard_correlation(np.ones((1, 10)) * 100)


def test_helpers(rng):
    a = rng.standard_normal((100, 5)).astype(np.float32)
    assert shared_rows(a, a[::-1]) == 100 and shared_rows(a, a + 1) == 0
    assert duplicate_rows(np.concatenate([a, a[:3]])) == 3
    assert merge_sparse_bins(np.array([[1, 1, 20, 1], [1, 1, 20, 1]]), 5).tolist() == [[23.0], [23.0]]
    r, zmax, p = paired_correlation([a, a])
    assert r[0, 1] == pytest.approx(np.mean(a.astype(np.float64) ** 2)) and p < 1e-10
    cmp = bitwise_equal({"x": np.zeros(3), "y": np.ones(2)}, {"x": np.zeros(3), "y": np.ones(2, np.float32)})
    assert not cmp.identical and cmp.mismatched == ["y"]
    assert bitwise_equal(np.array([np.nan]), np.array([np.nan])).identical  # same bits, even NaN
