"""Tests of dyroot.random: Philox4x32-10 known answers, numpy == torch, stream layout,
independence and the distribution of the draws."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from dyroot.random import (
    NOISE_TAG,
    choose_category,
    event_words,
    noise,
    noise_at,
    philox4x32_10,
    stream_key,
    uniforms,
    words_per_event,
)

DATA = pathlib.Path(__file__).parent / "data"

# Random123 tests/kat_vectors (github.com/DEShawResearch/random123), the "philox4x32 10" lines:
# counter (4 words), key (2 words), expected output (4 words).
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _philox_scalar(ctr, key):
    """An independent scalar Philox4x32-10 in Python integers (Random123's philox4x32_R)."""
    m = 0xFFFFFFFF
    c, k = list(ctr), list(key)
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) & m, (k[1] + 0xBB67AE85) & m]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & m, (p0 >> 32) ^ c[3] ^ k[1], p0 & m]
    return c


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_known_answer_vectors(ctr, key, expected):
    assert _philox_scalar(ctr, key) == list(expected)  # the scalar reference itself
    got = philox4x32_10(np.array([ctr], dtype=np.uint32), key)
    assert [int(x) for x in got[0]] == list(expected)  # exact
    torch = pytest.importorskip("torch")
    got_t = philox4x32_10(torch.tensor([ctr], dtype=torch.int64), key)
    assert got_t[0].tolist() == list(expected)  # exact


def test_layout_matches_contract():
    # COMMON.md section 4: key = (seed lo, seed hi), counter = (i lo, i hi, block, 0xD1).
    seed, event = 0x0123456789ABCDEF, 2**32 + 7
    key = stream_key(seed)
    assert key == (0x89ABCDEF, 0x01234567)
    w = event_words(seed, event, 1, 12)[0]
    for j in range(3):
        ref = _philox_scalar((event & 0xFFFFFFFF, event >> 32, j, NOISE_TAG), key)
        assert [int(x) for x in w[4 * j: 4 * j + 4]] == ref  # exact
    u = uniforms(seed, event, 1)[0]
    np.testing.assert_array_equal(u, (w[:8].astype(np.float64) + 0.5) / 2**32)  # exact
    d = noise(seed, event, 1)
    z0 = np.sqrt(-2 * np.log(u[0])) * np.cos(2 * np.pi * u[1])
    z3 = np.sqrt(-2 * np.log(u[2])) * np.sin(2 * np.pi * u[3])
    z4 = np.sqrt(-2 * np.log(u[4])) * np.cos(2 * np.pi * u[5])
    np.testing.assert_allclose(d.normals[0, [0, 3, 4]], [z0, z3, z4], rtol=1e-6, atol=0)  # float32 cast
    assert d.phill[0] == pytest.approx(np.pi * (2 * u[6] - 1), rel=1e-15)
    assert d.u_context[0] == u[7]  # exact


def test_reference_file():
    """The numbers the C++ twin is tested against (tests/data/random_stream_reference.json)."""
    ref = json.loads((DATA / "random_stream_reference.json").read_text())
    for case in ref["cases"]:
        seed, event = case["seed"], case["event"]
        assert [int(x) for x in event_words(seed, event, 1)[0]] == case["words"]  # exact
        assert uniforms(seed, event, 1)[0].tolist() == case["uniforms"]  # exact
        d = noise(seed, event, 1)
        np.testing.assert_allclose(d.normals[0], case["normals"], rtol=2e-7, atol=1e-7)  # 1 float32 ulp
        assert d.phill[0] == pytest.approx(case["phill"], rel=1e-14)


def test_words_per_event_and_bad_input():
    assert [words_per_event(d) for d in (1, 2, 5, 6, 7)] == [4, 4, 8, 8, 10]
    with pytest.raises(ValueError, match="seed"):
        stream_key(-1)
    with pytest.raises(ValueError, match="seed"):
        stream_key(2**64)
    with pytest.raises(ValueError, match="event range"):
        event_words(1, -5, 3)
    with pytest.raises(ValueError, match="fractions"):
        choose_category(np.array([0.5]), [0.0, 0.0])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_bit_identical_to_numpy(device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    first, n = 2**32 - 5000, 20000  # crosses the 32-bit boundary of the event index
    for dim in (5, 7):
        nw = words_per_event(dim)
        w_np = event_words(99, first, n, nw)
        w_t = event_words(99, first, n, nw, xp=torch, device=device).cpu().numpy()
        np.testing.assert_array_equal(w_t, w_np.astype(np.int64))  # exact
        np.testing.assert_array_equal(uniforms(99, first, n, nw, xp=torch, device=device).cpu().numpy(),
                                      uniforms(99, first, n, nw))  # exact
        a = noise(99, first, n, dim)
        b = noise(99, first, n, dim, xp=torch, device=device)
        assert b.normals.dtype == torch.float32 and b.phill.dtype == torch.float64
        # log/cos/sin may differ in the last bit between math libraries: at most 1 float32 ulp.
        np.testing.assert_allclose(b.normals.cpu().numpy(), a.normals, rtol=1.2e-7, atol=1e-7)
        np.testing.assert_allclose(b.phill.cpu().numpy(), a.phill, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(b.u_context.cpu().numpy(), a.u_context)  # exact


def test_shards_concatenate_to_the_single_stream():
    full = noise(5, 100, 3000)
    parts = [noise(5, 100 + lo, hi - lo) for lo, hi in ((0, 1000), (1000, 1001), (1001, 3000))]
    np.testing.assert_array_equal(np.concatenate([p.normals for p in parts]), full.normals)  # exact
    np.testing.assert_array_equal(np.concatenate([p.phill for p in parts]), full.phill)  # exact
    np.testing.assert_array_equal(np.concatenate([p.u_context for p in parts]), full.u_context)  # exact
    # any set of global indices, in any order: the rows of the one stream
    idx = np.array([2999, 100, 1234, 100])
    picked = noise_at(5, idx + 100)
    np.testing.assert_array_equal(picked.normals, full.normals[idx])  # exact
    np.testing.assert_array_equal(picked.phill, full.phill[idx])  # exact


def test_different_keys_share_no_noise_vector():
    n = 100_000
    rows = []
    for seed in (1, 2, 2**32 + 1):  # the last differs from seed 1 only in the high key word
        w = event_words(seed, 0, n)
        rows.append({r.tobytes() for r in w})
        assert len(rows[-1]) == n  # no two events of one stream share their words
    for i in range(3):
        for j in range(i + 1, 3):
            assert not rows[i] & rows[j]  # exact: no shared 256-bit noise vector
    # also no shared first normal pair (64 bits): a weaker, lower-dimensional check
    a = event_words(1, 0, n)[:, :2].copy().view(np.uint64).ravel()
    b = event_words(2, 0, n)[:, :2].copy().view(np.uint64).ravel()
    assert np.intersect1d(a, b).size == 0


def test_uniforms_chi2():
    from scipy import stats

    u = uniforms(2024, 0, 200_000)
    nb = 100
    for k in range(u.shape[1]):
        counts = np.bincount((u[:, k] * nb).astype(int), minlength=nb)
        chi2 = ((counts - u.shape[0] / nb) ** 2 / (u.shape[0] / nb)).sum()
        assert stats.chi2.sf(chi2, nb - 1) > 1e-4, k  # fixed seed; p-value of uniformity
    # serial pairs (u0, u1) on a 20x20 grid: independence of consecutive words
    pair = (u[:, 0] * 20).astype(int) * 20 + (u[:, 1] * 20).astype(int)
    counts = np.bincount(pair, minlength=400)
    chi2 = ((counts - u.shape[0] / 400) ** 2 / (u.shape[0] / 400)).sum()
    assert stats.chi2.sf(chi2, 399) > 1e-4
    # consecutive events (same word): no event-to-event correlation
    r = np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]
    assert abs(r) < 5 / np.sqrt(u.shape[0])  # 5 sigma


def test_normal_moments_and_phill():
    n = 200_000
    d = noise(7, 0, n)
    z = d.normals.astype(np.float64)
    se = 1 / np.sqrt(n)
    assert np.all(np.abs(z.mean(0)) < 5 * se)  # 5 sigma
    assert np.all(np.abs(z.var(0) - 1) < 5 * np.sqrt(2) * se)  # var of s^2 is 2/n
    kurt = (z**4).mean(0) / z.var(0) ** 2 - 3
    assert np.all(np.abs(kurt) < 5 * np.sqrt(24) * se)  # var of excess kurtosis is 24/n
    c = np.corrcoef(z.T) - np.eye(5)
    assert np.abs(c).max() < 5 * se  # incl. the Box-Muller partners (z0, z1)
    assert np.all(np.abs(d.phill) < np.pi)
    assert abs(d.phill.mean()) < 5 * np.pi / np.sqrt(3 * n)  # uniform(-pi, pi) has sd pi/sqrt(3)
    assert abs(np.mean(d.u_context) - 0.5) < 5 / np.sqrt(12 * n)
    # tails: P(|z| > 3) = 0.0027 for N(0, 1)
    tail = np.mean(np.abs(z) > 3)
    assert tail == pytest.approx(0.0026998, abs=5 * np.sqrt(0.0027 / (5 * n)))


def test_choose_category():
    u = uniforms(11, 0, 100_000)[:, 7]
    f = [0.1, 0.2, 0.3, 0.4]
    c = choose_category(u, f)
    frac = np.bincount(c, minlength=4) / len(u)
    np.testing.assert_allclose(frac, f, atol=5 * np.sqrt(0.25 / len(u)))  # 5 sigma
    assert choose_category(np.array([0.9999999999]), [1.0, 0.0]).tolist() == [0]
    torch = pytest.importorskip("torch")
    ct = choose_category(torch.from_numpy(u), f, xp=torch)
    np.testing.assert_array_equal(ct.numpy(), c)  # exact
