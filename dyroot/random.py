r"""Counter-based random streams (Philox4x32-10) keyed by seed and GLOBAL event index.

Pure module (numpy or torch, never ROOT). Every generator in dyroot (numpy,
torch on CPU or CUDA, the C++ twin ``dyroot/cpp/dyroot_random.hxx`` used by SOFIE
inside RDataFrame) draws the noise of event ``i`` from the same function of
``(seed, i)``, so templates are identical for 1 or N threads, any batch size,
any sharding and any scheduling.

Generator
    Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
    as 1, 2, 3", SC11), exactly as Random123: multipliers
    ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57``, Weyl key increments
    ``W0 = 0x9E3779B9``, ``W1 = 0xBB67AE85``, 10 rounds; one round maps
    ``(c0, c1, c2, c3)`` to
    ``(hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))`` and the key
    is bumped by ``(W0, W1)`` (mod 2^32) between rounds. Tested against the
    Random123 known-answer vectors (``tests/kat_vectors``).

Layout (the contract; the C++ twin follows it word for word)
    * key ``= (seed & 0xFFFFFFFF, seed >> 32)`` for ``0 <= seed < 2**64``;
    * counter of event ``i`` (``0 <= i < 2**63``), block ``j``:
      ``(i & 0xFFFFFFFF, i >> 32, j, 0xD1)``; block ``j`` gives the words
      ``w[4j] .. w[4j+3]``;
    * uniforms ``u_k = (w_k + 0.5) * 2**-32`` in double: exact, strictly inside
      (0, 1), identical in every implementation;
    * normals by Box-Muller on consecutive pairs, in double:
      ``r = sqrt(-2.0 * log(u[2p]))``, ``a = 6.283185307179586 * u[2p+1]``,
      ``z[2p] = r * cos(a)``, ``z[2p+1] = r * sin(a)``, for ``p = 0 .. P-1`` with
      ``P = ceil(dim / 2)``; the last ``sin`` is unused when ``dim`` is odd; the
      normals are cast to float32 for the flow;
    * ``phill = 3.141592653589793 * (2.0 * u[2P] - 1.0)`` (the dimuon azimuth,
      uniform in (-pi, pi), double);
    * ``u_context = u[2P + 1]``: the context draw of a conditional model (the
      category is the first ``c`` with ``u_context < cumsum(fractions)[c]``);
    * words per event ``2P + 2``, blocks ``ceil((2P + 2) / 4)``.

    For the default ``dim = 5``: ``P = 3``, normals from ``u0 .. u5`` (``z5``
    dropped), ``phill`` from ``u6``, the context from ``u7``: two blocks.
    A flow with more dimensions extends the same way (``dim = 7``: normals from
    ``u0 .. u7``, ``phill = u8``, context ``u9``, three blocks).

Exactness
    The words and uniforms are bit-identical in numpy (uint64 arithmetic), torch
    (int64 arithmetic with 16-bit limbs and masks, CPU and CUDA) and C++. The
    normals and ``phill`` go through ``log``/``cos``/``sin``, whose last bit may
    differ between math libraries (numpy's SIMD loops, torch's SLEEF, CUDA's
    libdevice, glibc): they agree to a few ulp in double, and after the cast to
    float32 to at most one float32 ulp in a tiny fraction of events.

Independence
    Streams with different seeds use different keys: Philox is a keyed bijection
    of the counter, so two keys give unrelated sequences; events of one seed use
    distinct counters, so no two events share a noise vector. The tag
    ``0xD1`` in the fourth counter word reserves the space for dyroot's event
    noise; other uses must pick another tag.

Example:
    >>> import numpy as np
    >>> d = noise(seed=1, first_event=0, n=4)
    >>> d.normals.shape, d.normals.dtype, d.phill.dtype
    ((4, 5), dtype('float32'), dtype('float64'))
    >>> bool(np.all(np.abs(d.phill) < np.pi))
    True
    >>> w = philox4x32_10(np.zeros((1, 4), np.uint32), (0, 0))
    >>> [f"{x:08x}" for x in w[0]]
    ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_W0",
    "PHILOX_W1",
    "PHILOX_ROUNDS",
    "NOISE_TAG",
    "StreamDraws",
    "stream_key",
    "words_per_event",
    "philox4x32_10",
    "event_words",
    "event_words_at",
    "uniforms",
    "noise",
    "noise_at",
    "category_edges",
    "choose_category",
]

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
#: Fourth counter word of dyroot's event-noise stream.
NOISE_TAG = 0xD1

_MASK32 = 0xFFFFFFFF
_TWO_PI = 6.283185307179586
_PI = 3.141592653589793
_INV_2_32 = 2.0**-32


class StreamDraws(NamedTuple):
    """The random draws of a range of events.

    Attributes:
        normals: ``[n, dim]`` float32, i.i.d. N(0, 1): the flow's ``noise`` input.
        phill: ``[n]`` float64, the dimuon azimuth in (-pi, pi) (radians).
        u_context: ``[n]`` float64 uniform in (0, 1), the context draw.
    """

    normals: Any
    phill: Any
    u_context: Any


def _is_torch(xp: ModuleType | None) -> bool:
    return xp is not None and xp.__name__ == "torch"


def stream_key(seed: int) -> tuple[int, int]:
    """The Philox key ``(seed & 0xFFFFFFFF, seed >> 32)`` of a seed.

    Args:
        seed: an integer in ``[0, 2**64)``.

    Returns:
        The two 32-bit key words.

    Raises:
        ValueError: if the seed is negative or does not fit in 64 bits.

    Example:
        >>> stream_key(2**32 + 5)
        (5, 1)
    """
    seed = int(seed)
    if not 0 <= seed < 2**64:
        msg = f"seed {seed} is outside [0, 2**64); pass a non-negative integer below 2**64"
        raise ValueError(msg)
    return seed & _MASK32, seed >> 32


def words_per_event(dim: int = 5) -> int:
    """Number of 32-bit words event noise of ``dim`` normals uses (``2*ceil(dim/2) + 2``).

    Example:
        >>> words_per_event(5), words_per_event(7)
        (8, 10)
    """
    if dim < 1:
        msg = f"dim must be at least 1, got {dim}"
        raise ValueError(msg)
    return 2 * ((dim + 1) // 2) + 2


def _key_schedule(key: tuple[int, int], rounds: int) -> list[tuple[int, int]]:
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    out = []
    for _ in range(rounds):
        out.append((k0, k1))
        k0, k1 = (k0 + PHILOX_W0) & _MASK32, (k1 + PHILOX_W1) & _MASK32
    return out


def _mulhilo_np(a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = a * np.uint64(m)  # a < 2**32, m < 2**32: exact in uint64
    return p >> np.uint64(32), p & np.uint64(_MASK32)


def _mulhilo_torch(a: Any, m: int) -> tuple[Any, Any]:
    # int64 cannot hold a 64-bit unsigned product: split m into 16-bit limbs,
    # every partial product stays below 2**48.
    p1 = a * (m & 0xFFFF)
    p2 = a * (m >> 16)
    t = p1 + ((p2 & 0xFFFF) << 16)
    return (p2 >> 16) + (t >> 32), t & _MASK32


def _rounds(c: list[Any], key: tuple[int, int], rounds: int, torch_mode: bool) -> list[Any]:
    mulhilo = _mulhilo_torch if torch_mode else _mulhilo_np
    c0, c1, c2, c3 = c
    for k0, k1 in _key_schedule(key, rounds):
        if not torch_mode:
            k0, k1 = np.uint64(k0), np.uint64(k1)  # type: ignore[assignment]
        hi0, lo0 = mulhilo(c0, PHILOX_M0)
        hi1, lo1 = mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return [c0, c1, c2, c3]


def philox4x32_10(counter: Any, key: tuple[int, int], *, rounds: int = PHILOX_ROUNDS) -> Any:
    """Philox4x32 of an array of counters under one key (Random123's ``philox4x32_R``).

    Args:
        counter: ``[n, 4]`` counters: a numpy integer array (values < 2**32) or an
            int64 torch tensor.
        key: the two 32-bit key words.
        rounds: number of rounds (10 is Philox4x32-10).

    Returns:
        ``[n, 4]`` words: uint32 for numpy, int64 (values in ``[0, 2**32)``) for torch.

    Example:
        >>> import numpy as np
        >>> ctr = np.array([[0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]], np.uint32)
        >>> [f"{x:08x}" for x in philox4x32_10(ctr, (0xA4093822, 0x299F31D0))[0]]
        ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']
    """
    if type(counter).__module__.startswith("torch"):
        ctr = counter.to(_torch().int64)
        out = _rounds([ctr[:, i] for i in range(4)], key, rounds, torch_mode=True)
        return _torch().stack(out, dim=1)
    arr = np.asarray(counter).astype(np.uint64)
    out = _rounds([arr[:, i] for i in range(4)], key, rounds, torch_mode=False)
    return np.stack(out, axis=1).astype(np.uint32)


def _torch() -> ModuleType:
    import torch

    return torch


def _check_range(first_event: int, n: int) -> None:
    if n < 0 or first_event < 0 or first_event + n > 2**63:
        msg = (f"event range [{first_event}, {first_event + n}) is invalid: indices must lie in "
               "[0, 2**63) and n must be non-negative")
        raise ValueError(msg)


def _index(first_event: int, n: int, xp: ModuleType, device: Any) -> Any:
    first_event, n = int(first_event), int(n)
    _check_range(first_event, n)
    if _is_torch(xp):
        return xp.arange(first_event, first_event + n, device=device, dtype=xp.int64)
    return np.arange(first_event, first_event + n, dtype=np.int64)


def event_words_at(seed: int, events: Any, n_words: int = 8) -> Any:
    """The stream words of the events with the given GLOBAL indices.

    The building block of :func:`event_words`; it takes the indices as an array so
    a fused device loop can advance them without a host round trip.

    Args:
        seed: the stream seed, ``[0, 2**64)``.
        events: ``[n]`` int64 event indices in ``[0, 2**63)`` (numpy array or torch
            tensor; not checked, for speed).
        n_words: words per event (rounded up to whole 4-word blocks internally).

    Returns:
        ``[n, n_words]``: uint32 for numpy, int64 for torch (values in ``[0, 2**32)``).
    """
    key = stream_key(seed)
    n_blocks = (n_words + 3) // 4
    blocks: list[Any] = []
    if type(events).__module__.startswith("torch"):
        torch = _torch()
        idx = events.to(torch.int64)
        lo, hi = idx & _MASK32, idx >> 32
        for j in range(n_blocks):
            c2 = torch.full_like(idx, j)
            c3 = torch.full_like(idx, NOISE_TAG)
            blocks.extend(_rounds([lo, hi, c2, c3], key, PHILOX_ROUNDS, torch_mode=True))
        return torch.stack(blocks[:n_words], dim=1)
    idx = np.asarray(events).astype(np.uint64)
    lo, hi = idx & np.uint64(_MASK32), idx >> np.uint64(32)
    for j in range(n_blocks):
        c2 = np.full_like(idx, j)
        c3 = np.full_like(idx, NOISE_TAG)
        blocks.extend(_rounds([lo, hi, c2, c3], key, PHILOX_ROUNDS, torch_mode=False))
    return np.stack(blocks[:n_words], axis=1).astype(np.uint32)


def event_words(
    seed: int, first_event: int, n: int, n_words: int = 8, *,
    xp: ModuleType = np, device: Any = None,
) -> Any:
    """The stream words of events ``first_event .. first_event + n - 1``.

    Args:
        seed: the stream seed, ``[0, 2**64)``.
        first_event: global index of the first event.
        n: number of events.
        n_words: words per event (rounded up to whole 4-word blocks internally).
        xp: ``numpy`` or ``torch``.
        device: torch device (``"cpu"``, ``"cuda"``); ignored for numpy.

    Returns:
        ``[n, n_words]``: uint32 for numpy, int64 for torch (values in ``[0, 2**32)``).

    Raises:
        ValueError: for a negative ``n`` or event index, or indices beyond 2**63.
    """
    return event_words_at(seed, _index(first_event, n, xp, device), n_words)


def _uniforms_at(seed: int, events: Any, n_words: int) -> Any:
    w = event_words_at(seed, events, n_words)
    if type(w).__module__.startswith("torch"):
        return (w.to(_torch().float64) + 0.5) * _INV_2_32
    return (w.astype(np.float64) + 0.5) * _INV_2_32


def uniforms(
    seed: int, first_event: int, n: int, n_words: int = 8, *,
    xp: ModuleType = np, device: Any = None,
) -> Any:
    """Uniforms ``(w + 0.5) * 2**-32`` in double, strictly inside (0, 1).

    Args:
        seed, first_event, n, n_words, xp, device: as :func:`event_words`.

    Returns:
        ``[n, n_words]`` float64 (numpy array or torch tensor).

    Example:
        >>> u = uniforms(7, 10, 3)
        >>> u.shape, bool(((u > 0) & (u < 1)).all())
        ((3, 8), True)
    """
    return _uniforms_at(seed, _index(first_event, n, xp, device), n_words)


def noise_at(seed: int, events: Any, dim: int = 5) -> StreamDraws:
    """The draws of the events with the given GLOBAL indices (see :func:`noise`).

    Args:
        seed: the stream seed, ``[0, 2**64)``.
        events: ``[n]`` int64 event indices (numpy array or torch tensor, on the
            device the draws are wanted on; not checked, for speed).
        dim: number of normals per event.

    Returns:
        :class:`StreamDraws`, in the array type and on the device of ``events``.
    """
    n_pairs = (dim + 1) // 2
    u = _uniforms_at(seed, events, words_per_event(dim))
    n = u.shape[0]
    ua, ub = u[:, 0 : 2 * n_pairs : 2], u[:, 1 : 2 * n_pairs : 2]
    if type(u).__module__.startswith("torch"):
        torch = _torch()
        r = torch.sqrt(-2.0 * torch.log(ua))
        a = _TWO_PI * ub
        z = torch.stack((r * torch.cos(a), r * torch.sin(a)), dim=2).reshape(n, 2 * n_pairs)[:, :dim]
        z = z.to(torch.float32)
    else:
        r = np.sqrt(-2.0 * np.log(ua))
        a = _TWO_PI * ub
        z = np.stack((r * np.cos(a), r * np.sin(a)), axis=2).reshape(n, 2 * n_pairs)[:, :dim]
        z = z.astype(np.float32)
    phill = _PI * (2.0 * u[:, 2 * n_pairs] - 1.0)
    return StreamDraws(z, phill, u[:, 2 * n_pairs + 1])


def noise(
    seed: int, first_event: int, n: int, dim: int = 5, *,
    xp: ModuleType = np, device: Any = None,
) -> StreamDraws:
    r"""The flow noise, dimuon azimuth and context draw of a range of events.

    Args:
        seed: the stream seed, ``[0, 2**64)``.
        first_event: global index of the first event (the same whatever the
            sharding, threading or batching).
        n: number of events.
        dim: number of normals per event (the flow's dimension).
        xp: ``numpy`` or ``torch``.
        device: torch device; ignored for numpy.

    Returns:
        :class:`StreamDraws` ``(normals [n, dim] float32, phill [n] float64,
        u_context [n] float64)``.

    Raises:
        ValueError: for an invalid seed or event range.

    Example:
        >>> a = noise(3, 0, 10)
        >>> b = noise(3, 4, 3)  # a shard is a slice of the one stream
        >>> bool((a.normals[4:7] == b.normals).all())
        True
    """
    stream_key(seed)
    return noise_at(seed, _index(first_event, n, xp, device), dim)


def category_edges(fractions: Any) -> list[float]:
    """Cumulative category fractions, normalised, accumulated left to right in double
    (as the C++ twin), the last one ``inf`` so that no event is left without a category.

    Raises:
        ValueError: if a fraction is negative or non-finite, or all are zero.

    Example:
        >>> category_edges([1.0, 2.0, 1.0])
        [0.25, 0.75, inf]
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or np.any(f < 0) or not f.sum() > 0 or not np.all(np.isfinite(f)):
        msg = f"category fractions {f.tolist()} must be finite, non-negative and not all zero"
        raise ValueError(msg)
    cum, acc = [], 0.0
    total = math.fsum(f.tolist())
    for x in f.tolist():
        acc += x / total
        cum.append(acc)
    cum[-1] = math.inf
    return cum


def choose_category(u_context: Any, fractions: Any, *, xp: ModuleType = np, edges: Any = None) -> Any:
    """Category index of each event from its context draw: the first ``c`` with
    ``u < cumsum(fractions)[c]`` (fractions are normalised to sum 1 first).

    Args:
        u_context: ``[n]`` uniforms from :func:`noise`.
        fractions: category fractions (any positive scale).
        xp: ``numpy`` or ``torch``.
        edges: :func:`category_edges` already on the device of ``u_context`` (a
            torch tensor), to avoid a host-to-device copy per batch.

    Returns:
        ``[n]`` int64 indices in ``[0, len(fractions))``.

    Raises:
        ValueError: if a fraction is negative or all are zero.

    Example:
        >>> import numpy as np
        >>> choose_category(np.array([0.1, 0.5, 0.99]), [0.25, 0.5, 0.25]).tolist()
        [0, 1, 2]
    """
    if _is_torch(xp):
        if edges is None:
            edges = xp.tensor(category_edges(fractions), dtype=xp.float64, device=u_context.device)
        return xp.searchsorted(edges, u_context.contiguous(), right=True)
    cum = np.asarray(category_edges(fractions) if edges is None else edges)
    return np.searchsorted(cum, u_context, side="right").astype(np.int64)
