r"""The reference sample: Drell-Yan :math:`Z/\gamma^*\to\mu\mu` (or :math:`gg\to H\to\mu\mu`) from Pythia 8.

Boundary module (Pythia 8 through ``pythia8mc``; numpy and uproot for the output;
never ROOT). One call of :func:`simulate` writes a ROOT file with a TTree
``events`` (the dyroot contract: ``MUON_COLUMNS``, ``DIMUON_COLUMNS``, ``category``,
``weight`` in pb per event, ``mll_true``) and a ``TNamed`` ``dyroot_provenance``
holding a JSON record of everything that defines the sample.

Physics
    pp collisions at :math:`\sqrt{s}` = 13 TeV (``sqrt_s``), hard process
    ``WeakSingleBoson:ffbar2gmZ`` with full :math:`\gamma^*/Z` interference
    (``WeakZ0:gmZmode = 0``) forced to :math:`\mu\mu`, or ``HiggsSM:gg2H`` with
    :math:`H\to\mu\mu` (``process="ggH"``, mass ``mh``). Parton level: initial- and
    final-state showers on, including QED radiation off quarks and off the muons
    (``TimeShower:QEDshowerByL``); multiparton interactions and hadronisation off
    by default (``mpi``, ``hadronisation`` switch them on; they cost a factor ~30 in
    speed and do not change the muons beyond the recoil). The muons are the bottom
    copies of the resonance's daughters, i.e. "bare" muons after QED FSR. Each muon
    is smeared in :math:`q/p_T` (:mod:`dyroot.detector`), the event is kept if the
    reconstructed muons pass the :class:`~dyroot.features.Selection`, and gets its
    category from the :class:`~dyroot.features.CategoryScheme`.

Output
    TTree ``events``: ``mu1_*``/``mu2_*`` (``mu1`` the leading reconstructed muon; pt, eta,
    phi float64, charge int32), ``mll, ptll, yll, costheta, phi_cs, phill`` (float64, computed by
    :func:`dyroot.features.dimuon_from_muons` from the stored muons, so a reader recomputes them
    bit-identically), ``category`` (int32), ``weight`` (float64, pb per event), ``mll_true``
    (float64, the mass of the generator :math:`\gamma^*/Z` or H, GeV) and, with ``truth=True``,
    ``mu1_pt_true``/``mu2_pt_true``. One TTree cluster per shard. ``TNamed dyroot_provenance``:
    JSON of the configuration, seed, sizes, cross-sections, Pythia settings and seeds, versions.

Generator mass window
    ``mass_window`` sets ``PhaseSpace:mHatMin/Max`` (the :math:`\gamma^*/Z` mass).
    The defaults were measured with ``benchmarks/simulate_migration.py`` (stratified
    generation from 30 GeV to 13 TeV, 7.6e5 events, resolution tails by importance
    sampling). Analysis preset, (100, 500) GeV: of the reconstructed 110-160 GeV events,
    (9 +- 4)e-5 have a true mass below 100 GeV and (3 +- 1)e-6 above 500 GeV (an upper cut
    at 300 GeV would lose 1.4e-4: FSR moves events down). Of the part from below,
    (7 +- 4)e-5 are boosted Z-peak events (true mass < 95 GeV, a muon above ~300 GeV where
    the :math:`q/p_T` resolution is 8-10 %): no lower cut above the Z peak removes them;
    ``mass_window=(90, 500)``, which takes in the Z peak, leaves 2e-7 at ~18 times the
    generation cost. Training preset, (95, 500) GeV for its reco 105-170 GeV window (the
    flow's training window, 5 GeV around the fit range): the same geometry as the analysis
    preset shifted by 5 GeV, so the migration from below is of order 1e-4 of the window,
    concentrated at its lower edge, 5 GeV away from the fit range
    (``benchmarks/simulate_migration.py --preset training`` measures it).
    18.7 % (analysis) and 14 % (training) of the generated events are kept; the training
    preset keeps 10 times more events in the analysis window per generated event than a
    (80, 500) GeV window with a reco 95-180 GeV window did (8.2 % against 0.8 %).

Sample size and sharding
    ``n_events`` is the number of events **written**, i.e. passing the selection.
    The sample is cut into shards of ``shard_size`` selected events; shard ``k``
    runs its own Pythia with ``Random:seed`` derived from ``(seed, k)`` and its own
    smearing generator ``numpy.random.default_rng(SeedSequence([seed, k]))``. Shards
    are independent of how they are scheduled, so the events are identical for any
    ``jobs`` (worker processes) and the first shards of a larger sample with the same
    seed are the same events as a smaller one.

Weights
    Every event has the same weight ``sigma_pb / n_generated`` in pb, where
    ``sigma_pb`` is Pythia's ``sigmaGen`` (combined over shards, weighted by the
    accepted events of each) and ``n_generated`` the generated events needed to fill
    the sample; so ``sum(weight)`` is the cross-section times selection efficiency in
    pb. Generation stops at the event that fills each shard; the resulting bias of the
    efficiency (inverse sampling) is of order ``1/n_events`` and neglected.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import _version
from .detector import DEFAULT_SMEARING, SmearingTable, smear_muons
from .exceptions import ConfigError, DyrootError, OutputExistsError
from .features import DEFAULT_CATEGORIES, MUON_COLUMNS, DIMUON_COLUMNS, CategoryScheme, Selection, dimuon_from_muons

__all__ = [
    "DEFAULT_MASS_WINDOW",
    "TRAINING_MASS_WINDOW",
    "PRESETS",
    "SimulationConfig",
    "SimulationResult",
    "preset_config",
    "pythia_settings",
    "generate_truth",
    "reconstruct",
    "simulate",
    "TREE_NAME",
    "PROVENANCE_NAME",
]

#: Generator :math:`\gamma^*/Z` mass window (GeV) of the analysis preset, measured by
#: ``benchmarks/simulate_migration.py``: migration into reco 110-160 GeV (9 +- 4)e-5 from below,
#: (3 +- 1)e-6 from above (see the module docstring).
DEFAULT_MASS_WINDOW: tuple[float, float] = (100.0, 500.0)
#: Generator window of the training preset (reco 105-170 GeV, the flow's training window).
TRAINING_MASS_WINDOW: tuple[float, float] = (95.0, 500.0)

#: Name of the output tree and of the provenance object.
TREE_NAME = "events"
PROVENANCE_NAME = "dyroot_provenance"

_MB_TO_PB = 1.0e9
_TRUTH_COLUMNS = ("pt1", "eta1", "phi1", "q1", "pt2", "eta2", "phi2", "q2", "mll_true")
_CHUNK = 500  # generated events per smearing chunk (part of the definition of the random streams)


@dataclass(frozen=True)
class SimulationConfig:
    r"""Everything that defines a simulated sample except its seed and size.

    Args:
        process: ``"dy"`` (:math:`pp\to Z/\gamma^*\to\mu\mu`) or ``"ggH"``
            (:math:`gg\to H\to\mu\mu`).
        sqrt_s: centre-of-mass energy in TeV.
        mass_window: generator mass window ``(lo, hi)`` in GeV
            (``PhaseSpace:mHatMin/Max``); ``None`` keeps Pythia's defaults.
        mh: Higgs mass in GeV (``process="ggH"``).
        mpi: multiparton interactions on.
        hadronisation: hadronisation on.
        selection: the reconstructed-level selection (pT/eta cuts, opposite charge,
            optional reco mll window); ``mll_range=None`` keeps every mass.
        smearing: the :math:`q/p_T` resolution table.
        categories: the category scheme stored as ``category``.
        truth: also write the generator-level muon pT (``mu1_pt_true``,
            ``mu2_pt_true``; eta and phi are not smeared).
        extra_settings: more Pythia ``readString`` settings, applied last.
        shard_size: selected events per shard (defines the random streams).
        preset: the name of the preset this configuration came from (provenance).
    """

    process: str = "dy"
    sqrt_s: float = 13.0
    mass_window: tuple[float, float] | None = DEFAULT_MASS_WINDOW
    mh: float = 125.0
    mpi: bool = False
    hadronisation: bool = False
    selection: Selection = field(default_factory=lambda: Selection(27.0, 15.0, 2.7, True, None))
    smearing: SmearingTable = DEFAULT_SMEARING
    categories: CategoryScheme = DEFAULT_CATEGORIES
    truth: bool = False
    extra_settings: tuple[str, ...] = ()
    shard_size: int = 10_000
    preset: str = "analysis"

    def __post_init__(self) -> None:
        problems = []
        if self.process not in ("dy", "ggH"):
            problems.append(f"process must be 'dy' or 'ggH', got {self.process!r}")
        if not (self.sqrt_s > 0):
            problems.append(f"sqrt_s must be positive (TeV), got {self.sqrt_s}")
        if self.mass_window is not None:
            lo, hi = self.mass_window
            if not (0 <= lo < hi):
                problems.append(f"mass_window must be (lo, hi) with 0 <= lo < hi in GeV, got {self.mass_window}")
            elif hi > 1000.0 * self.sqrt_s:
                problems.append(f"mass_window upper edge {hi} GeV exceeds sqrt(s) = {1000 * self.sqrt_s} GeV")
        if self.process == "ggH" and not (10.0 < self.mh < 1000.0 * self.sqrt_s):
            problems.append(f"mh must be a Higgs mass in GeV, got {self.mh}")
        if int(self.shard_size) < 1:
            problems.append(f"shard_size must be >= 1, got {self.shard_size}")
        if problems:
            raise ConfigError(problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (part of the provenance)."""
        return {
            "preset": self.preset,
            "process": self.process,
            "sqrt_s_tev": self.sqrt_s,
            "mass_window_gev": None if self.mass_window is None else list(self.mass_window),
            "mh_gev": self.mh if self.process == "ggH" else None,
            "mpi": self.mpi,
            "hadronisation": self.hadronisation,
            "selection": self.selection.to_dict(),
            "smearing": self.smearing.to_dict(),
            "categories": self.categories.to_list(),
            "truth": self.truth,
            "extra_settings": list(self.extra_settings),
            "shard_size": int(self.shard_size),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SimulationConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(
            process=d["process"], sqrt_s=float(d["sqrt_s_tev"]),
            mass_window=None if d.get("mass_window_gev") is None else tuple(d["mass_window_gev"]),
            mh=float(d.get("mh_gev") or 125.0), mpi=bool(d["mpi"]), hadronisation=bool(d["hadronisation"]),
            selection=Selection.from_dict(d["selection"]), smearing=SmearingTable.from_dict(d["smearing"]),
            categories=CategoryScheme.from_list(d["categories"]), truth=bool(d.get("truth", False)),
            extra_settings=tuple(d.get("extra_settings", ())), shard_size=int(d["shard_size"]),
            preset=str(d.get("preset", "custom")),
        )


#: Named starting points: ``analysis`` (the ATLAS-like analysis selection, every reco
#: mass kept) and ``training`` (the looser pre-selection a flow is trained on:
#: leading/subleading pT > 20/10 GeV, :math:`|\eta| < 3.5` (the smearing table's last row
#: is extended flat beyond 2.7; the flow blurs this edge, so it is kept well away from the
#: analysis's 2.7), reco 105 < mll < 170 GeV: the default training window of
#: :data:`dyroot.train.DEFAULT_TRAINING_SELECTION`).
PRESETS: dict[str, dict[str, Any]] = {
    "analysis": {"selection": Selection(27.0, 15.0, 2.7, True, None), "mass_window": DEFAULT_MASS_WINDOW},
    "training": {"selection": Selection(20.0, 10.0, 3.5, True, (105.0, 170.0)),
                 "mass_window": TRAINING_MASS_WINDOW},
}


def preset_config(preset: str = "analysis", **overrides: Any) -> SimulationConfig:
    """A :class:`SimulationConfig` from a named preset, with keyword overrides.

    For ``process="ggH"`` the generator mass window defaults to ``None`` (Pythia's
    Breit-Wigner range around ``mh``) unless given.

    Args:
        preset: a key of :data:`PRESETS`.
        **overrides: any :class:`SimulationConfig` field.

    Raises:
        ConfigError: for an unknown preset or an invalid field.

    Example:
        >>> preset_config("training").selection.mll_range
        (105.0, 170.0)
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    kw = dict(PRESETS[preset])
    if overrides.get("process", "dy") == "ggH":
        kw["mass_window"] = None
    kw.update(overrides)
    try:
        return SimulationConfig(preset=preset, **kw)
    except TypeError as err:
        raise ConfigError(f"invalid simulation setting: {err}") from None


def pythia_settings(config: SimulationConfig, pythia_seed: int | None = None) -> list[str]:
    """The Pythia ``readString`` lines of a configuration (recorded in the provenance).

    Args:
        config: the sample definition.
        pythia_seed: ``Random:seed`` (1..900000000); ``None`` leaves the seed lines out.

    Returns:
        The settings in the order they are applied; ``config.extra_settings`` come last.
    """
    s = [
        f"Beams:eCM = {1000.0 * config.sqrt_s!r}",
        f"PartonLevel:MPI = {'on' if config.mpi else 'off'}",
        "PartonLevel:ISR = on",
        "PartonLevel:FSR = on",
        "TimeShower:QEDshowerByL = on",
        "TimeShower:QEDshowerByQ = on",
        "SpaceShower:QEDshowerByQ = on",
        f"HadronLevel:all = {'on' if config.hadronisation else 'off'}",
    ]
    if config.process == "dy":
        s += ["WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 0", "23:onMode = off", "23:onIfAny = 13"]
    else:
        s += ["HiggsSM:gg2H = on", f"25:m0 = {config.mh!r}", "25:onMode = off", "25:onIfAny = 13"]
    if config.mass_window is not None:
        s += [f"PhaseSpace:mHatMin = {config.mass_window[0]!r}", f"PhaseSpace:mHatMax = {config.mass_window[1]!r}"]
    if pythia_seed is not None:
        s += ["Random:setSeed = on", f"Random:seed = {int(pythia_seed)}"]
    s += ["Print:quiet = on", "Next:numberCount = 0"]
    return s + list(config.extra_settings)


def _pythia_seed(seed: int, shard: int) -> int:
    """Pythia ``Random:seed`` (1..9e8) of a shard: consecutive from a hash of ``seed``, so
    the shards of one sample never share a seed."""
    base = int(np.random.SeedSequence([int(seed), 0x5D]).generate_state(1, np.uint64)[0] % 900_000_000)
    return (base + int(shard)) % 900_000_000 + 1


def _make_pythia(config: SimulationConfig, pythia_seed: int) -> Any:
    from ._optional import import_optional

    p8 = import_optional("pythia8mc")
    py = p8.Pythia("", False)
    for line in pythia_settings(config, pythia_seed):
        if not py.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}; check its spelling in the Pythia 8 manual")
    if not py.init():
        raise DyrootError("Pythia failed to initialise; check the extra settings and the mass window")
    return py


def _fill_truth(py: Any, out: np.ndarray) -> int:
    """Generate ``len(out)`` events into ``out`` (columns ``_TRUTH_COLUMNS``); returns failures."""
    ev = py.event
    nxt = py.next
    failed = 0
    for i in range(out.shape[0]):
        while not nxt():
            failed += 1
            if failed > 1000 + out.shape[0]:
                raise DyrootError("Pythia failed to generate more than 1000 events in a row; check the settings")
        res = ev[ev[5].iBotCopyId()]
        a = ev[ev[res.daughter1()].iBotCopyId()]
        b = ev[ev[res.daughter2()].iBotCopyId()]
        ida, idb = a.id(), b.id()
        if ida * idb != -169:
            msg = (f"the resonance at event[5] (id {res.id()}) decayed to {ida}, {idb} instead of a muon pair; "
                   "extra Pythia settings must keep the decay forced to mu+ mu-")
            raise DyrootError(msg)
        out[i] = (a.pT(), a.eta(), a.phi(), -1.0 if ida > 0 else 1.0,
                  b.pT(), b.eta(), b.phi(), -1.0 if idb > 0 else 1.0, res.m())
    return failed


def generate_truth(n: int, config: SimulationConfig, seed: int = 1, shard: int = 0) -> dict[str, np.ndarray]:
    r"""Generator-level muon pairs, before smearing and selection (one process).

    Args:
        n: number of generated events.
        config: the configuration (process, energy, mass window, showers...).
        seed, shard: select the Pythia random stream as :func:`simulate` does.

    Returns:
        ``pt1, eta1, phi1, q1, pt2, eta2, phi2, q2, mll_true`` (GeV), in the order
        of the resonance's daughters, plus ``sigma_pb`` (0-d array: Pythia's
        cross-section estimate after these events, in pb).
    """
    py = _make_pythia(config, _pythia_seed(seed, shard))
    out = np.empty((int(n), len(_TRUTH_COLUMNS)))
    _fill_truth(py, out)
    d = {c: out[:, i].copy() for i, c in enumerate(_TRUTH_COLUMNS)}
    d["sigma_pb"] = np.asarray(py.infoPython().sigmaGen() * _MB_TO_PB)
    return d


def reconstruct(truth: Mapping[str, np.ndarray], config: SimulationConfig, rng: np.random.Generator,
                *, keep_all: bool = False) -> dict[str, np.ndarray]:
    r"""Smear, order, select and categorise generator-level muon pairs.

    Args:
        truth: output of :func:`generate_truth` (or the same columns).
        config: gives the smearing table, selection and categories.
        rng: draws the smearing normals (``rng.standard_normal((n, 2))``).
        keep_all: return every event and a boolean ``selected`` column instead of
            only the selected events.

    Returns:
        The event columns (``MUON_COLUMNS``, ``DIMUON_COLUMNS``, ``category``,
        ``mll_true``, and ``mu1_pt_true``/``mu2_pt_true``), ``mu1`` the leading
        reconstructed muon.
    """
    n = len(truth["pt1"])
    z = rng.standard_normal((n, 2))
    pa, qa = smear_muons(truth["pt1"], truth["eta1"], truth["q1"], None, config.smearing, z=z[:, 0])
    pb, qb = smear_muons(truth["pt2"], truth["eta2"], truth["q2"], None, config.smearing, z=z[:, 1])
    lead_a = pa >= pb
    ev: dict[str, np.ndarray] = {
        "mu1_pt": np.where(lead_a, pa, pb), "mu1_eta": np.where(lead_a, truth["eta1"], truth["eta2"]),
        "mu1_phi": np.where(lead_a, truth["phi1"], truth["phi2"]), "mu1_charge": np.where(lead_a, qa, qb),
        "mu2_pt": np.where(lead_a, pb, pa), "mu2_eta": np.where(lead_a, truth["eta2"], truth["eta1"]),
        "mu2_phi": np.where(lead_a, truth["phi2"], truth["phi1"]), "mu2_charge": np.where(lead_a, qb, qa),
    }
    ev.update(dimuon_from_muons(*(ev[c] for c in MUON_COLUMNS)))
    ev["mu1_pt_true"] = np.where(lead_a, truth["pt1"], truth["pt2"])
    ev["mu2_pt_true"] = np.where(lead_a, truth["pt2"], truth["pt1"])
    ev["mll_true"] = np.asarray(truth["mll_true"], dtype=np.float64)
    ev["category"] = config.categories.assign(ev)
    for c in ("mu1_charge", "mu2_charge"):
        ev[c] = ev[c].astype(np.int32)
    sel = np.asarray(config.selection.mask(ev), dtype=bool)
    if keep_all:
        ev["selected"] = sel
        return ev
    return {k: v[sel] for k, v in ev.items()}


# ----------------------------------------------------------------------------------------------
# Shards (run in worker processes)

_PROGRESS: Any = None  # a multiprocessing queue in workers, set by _init_worker


def _init_worker(q: Any) -> None:
    global _PROGRESS
    _PROGRESS = q


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what C++ prints on stdout (Pythia's warnings) to stderr, so that stdout stays
    clean for the CLI's JSON; the C stdio buffer is flushed before fd 1 is restored."""
    import ctypes

    try:
        libc_fflush = ctypes.CDLL(None).fflush
    except (OSError, AttributeError):  # pragma: no cover - exotic platforms: leave stdout alone
        yield
        return
    sys.stdout.flush()
    libc_fflush(None)
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        libc_fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def _run_shard(config_dict: dict[str, Any], seed: int, shard: int, n_target: int, path: str,
               report: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate one shard of ``n_target`` selected events, save it to ``path`` (.npz)."""
    with _stdout_to_stderr():
        return _run_shard_quiet(config_dict, seed, shard, n_target, path, report)


def _run_shard_quiet(config_dict: dict[str, Any], seed: int, shard: int, n_target: int, path: str,
                     report: Callable[[int], None] | None) -> dict[str, Any]:
    config = SimulationConfig.from_dict(config_dict)
    t0, c0 = time.perf_counter(), time.process_time()
    py = _make_pythia(config, _pythia_seed(seed, shard))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(shard)]))
    buf = np.empty((_CHUNK, len(_TRUTH_COLUMNS)))
    parts: list[dict[str, np.ndarray]] = []
    n_sel = n_gen = failed = 0
    while n_sel < n_target:
        failed += _fill_truth(py, buf)
        truth = {c: buf[:, i] for i, c in enumerate(_TRUTH_COLUMNS)}
        ev = reconstruct(truth, config, rng, keep_all=True)
        idx = np.flatnonzero(ev.pop("selected"))
        take = idx[: n_target - n_sel]
        if n_sel + len(idx) >= n_target:
            n_gen += int(take[-1]) + 1
        else:
            n_gen += _CHUNK
            if n_gen >= 200_000 and n_sel + len(idx) == 0:
                msg = (f"no event out of {n_gen} generated passed the selection {config.selection.to_dict()}; "
                       "loosen the cuts or widen the generator mass window")
                raise ConfigError(msg)
        parts.append({k: v[take] for k, v in ev.items()})
        n_sel += len(take)
        if report is not None:
            report(len(take))
        elif _PROGRESS is not None:
            _PROGRESS.put(len(take))
    info = py.infoPython()
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    np.savez(path, **out)
    return {"shard": shard, "n_selected": n_sel, "n_generated": n_gen, "n_failed": failed,
            "n_accepted": int(info.nAccepted()), "sigma_pb": info.sigmaGen() * _MB_TO_PB,
            "sigma_err_pb": info.sigmaErr() * _MB_TO_PB, "pythia_seed": _pythia_seed(seed, shard),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "path": path}


def _shard_sizes(n_events: int, shard_size: int) -> list[int]:
    full, rest = divmod(int(n_events), int(shard_size))
    return [int(shard_size)] * full + ([rest] if rest else [])


def _run_all(config: SimulationConfig, n_events: int, seed: int, jobs: int, workdir: str,
             progress: bool) -> list[dict[str, Any]]:
    from ._optional import import_optional

    sizes = _shard_sizes(n_events, config.shard_size)
    cfg = config.to_dict()
    paths = [os.path.join(workdir, f"shard_{k:06d}.npz") for k in range(len(sizes))]
    tqdm = import_optional("tqdm").tqdm
    bar = tqdm(total=int(n_events), unit="ev", desc=f"simulate {config.process}", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        jobs = max(1, min(int(jobs), len(sizes)))
        if jobs == 1:
            return [_run_shard(cfg, seed, k, n, paths[k], report=bar.update) for k, n in enumerate(sizes)]
        ctx = mp.get_context("spawn")  # never fork a process that may hold ROOT or threads
        q = ctx.Queue()
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                    initargs=(q,)) as pool:
            futures = [pool.submit(_run_shard, cfg, seed, k, n, paths[k]) for k, n in enumerate(sizes)]
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        for g in pending:
                            g.cancel()
                        raise f.exception()  # type: ignore[misc]
                try:
                    while True:
                        bar.update(q.get_nowait())
                except queue_mod.Empty:
                    pass
            return [f.result() for f in futures]
    except cf.process.BrokenProcessPool:
        msg = ("a simulation worker process died before finishing. Worker processes are started with "
               "'spawn', which re-imports the calling script: in a script, call simulate(jobs>1) under "
               "`if __name__ == '__main__':` (or use jobs=1); otherwise the machine may have run out of memory")
        raise DyrootError(msg) from None
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` did.

    Attributes:
        path: the written file.
        n_selected: events written.
        n_generated: events generated to fill them.
        sigma_pb: generator cross-section in pb (in the mass window, times BR).
        sigma_selected_pb: ``sigma_pb * n_selected / n_generated`` (= sum of weights).
        seconds: wall time of the generation (without writing).
        cpu_seconds: CPU time of the shards (all workers together): ``n_generated / cpu_seconds``
            is the throughput per core, insensitive to other jobs sharing the machine.
        generated_per_second: ``n_generated / seconds``.
        provenance: the JSON record stored in the file.
    """

    path: Path
    n_selected: int
    n_generated: int
    sigma_pb: float
    sigma_selected_pb: float
    seconds: float
    cpu_seconds: float
    generated_per_second: float
    provenance: dict[str, Any]


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"dyroot": _version.__version__, "python": sys.version.split()[0], "numpy": np.__version__}
    for dist in ("pythia8mc", "uproot"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def _write_root(path: Path, shards: list[dict[str, Any]], weight: float, truth: bool,
                provenance: dict[str, Any]) -> None:
    from ._optional import import_optional
    from .io import make_tnamed

    uproot = import_optional("uproot")
    cols: dict[str, Any] = {c: (np.int32 if c.endswith("charge") else np.float64) for c in MUON_COLUMNS}
    cols.update({c: np.float64 for c in DIMUON_COLUMNS})
    cols.update({"category": np.int32, "weight": np.float64, "mll_true": np.float64})
    if truth:
        cols.update({"mu1_pt_true": np.float64, "mu2_pt_true": np.float64})
    title = ("dyroot simulated events (Pythia 8 " + provenance["process"] + ", smeared; weight in pb)")
    with uproot.recreate(path) as f:
        tree = f.mktree(TREE_NAME, cols, title=title)
        # One cluster per shard (every shard but the last has exactly shard_size entries), so that
        # RDataFrame's implicit multithreading can split the tree; uproot would declare no clusters.
        meta = getattr(getattr(tree, "_cascading", None), "_metadata", None)
        if isinstance(meta, dict) and "fAutoFlush" in meta:
            meta["fAutoFlush"] = int(provenance["shard_size"])
        for s in shards:
            with np.load(s["path"]) as z:
                chunk = {c: z[c].astype(cols[c]) for c in cols if c != "weight"}
            chunk["weight"] = np.full(len(chunk["mll"]), weight)
            tree.extend(chunk)
        f[PROVENANCE_NAME] = make_tnamed(PROVENANCE_NAME, json.dumps(provenance, sort_keys=True))


def simulate(
    output: str | os.PathLike[str],
    n_events: int,
    config: SimulationConfig | None = None,
    *,
    seed: int = 1,
    jobs: int = 1,
    force: bool = False,
    progress: bool = False,
) -> SimulationResult:
    r"""Simulate a reference sample and write it to a ROOT file.

    Args:
        output: the ROOT file to write (written to a temporary file in the same
            directory, then renamed).
        n_events: number of events to **write** (after the selection).
        config: the sample definition; default ``preset_config("analysis")``.
        seed: the master seed (any non-negative integer). The same
            ``(seed, n_events, config)`` gives identical events for any ``jobs``.
        jobs: worker processes (one Pythia each).
        force: overwrite an existing ``output``.
        progress: show a tqdm progress bar on stderr.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        OutputExistsError: ``output`` exists and ``force`` is false.
        ConfigError: invalid arguments, or a selection that keeps nothing.
        ModuleNotFoundError: ``pythia8mc`` is not installed (the text says how to install it).

    Example:
        >>> r = simulate("dy.root", 20_000, preset_config("analysis"), seed=1, jobs=2)  # doctest: +SKIP
        >>> r.sigma_selected_pb  # doctest: +SKIP
    """
    config = config or preset_config("analysis")
    out = Path(output)
    if int(n_events) < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    if int(jobs) < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass force=True (--force) to overwrite it or choose another output")
    if not out.parent.is_dir():
        raise ConfigError(f"the directory of the output {out} does not exist; create it first")
    workdir = tempfile.mkdtemp(prefix=".dyroot-sim-", dir=out.parent)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        t0 = time.perf_counter()
        shards = _run_all(config, int(n_events), int(seed), int(jobs), workdir, progress)
        seconds = time.perf_counter() - t0
        cpu = sum(s["cpu_seconds"] for s in shards)
        n_gen = sum(s["n_generated"] for s in shards)
        n_acc = sum(s["n_accepted"] for s in shards)
        sigma = sum(s["sigma_pb"] * s["n_accepted"] for s in shards) / n_acc
        sigma_err = np.sqrt(sum((s["sigma_err_pb"] * s["n_accepted"]) ** 2 for s in shards)) / n_acc
        weight = sigma / n_gen
        prov = {
            "format": "dyroot-simulated-events", "format_version": 1,
            **config.to_dict(),
            "seed": int(seed), "n_selected": int(n_events), "n_generated": int(n_gen),
            "n_failed": int(sum(s["n_failed"] for s in shards)), "n_shards": len(shards),
            "pythia_seeds": [s["pythia_seed"] for s in shards],
            "pythia_settings": pythia_settings(config),
            "sigma_pb": sigma, "sigma_err_pb": float(sigma_err), "weight_pb": weight,
            "sigma_selected_pb": weight * int(n_events),
            "generator": "Pythia 8 (pythia8mc), parton level" if not config.hadronisation else "Pythia 8 (pythia8mc)",
            "tree": TREE_NAME, "units": "GeV", "weight_units": "pb per event",
            "versions": _versions(),
            # The only fields that differ between two runs with the same seed:
            "jobs": int(jobs), "wall_seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_root(tmp, shards, weight, config.truth, prov)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if tmp.exists():
            tmp.unlink()
    return SimulationResult(out, int(n_events), int(n_gen), sigma, weight * int(n_events), seconds, cpu,
                            n_gen / seconds if seconds > 0 else float("inf"), prov)
