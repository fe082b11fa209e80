r"""Distributed generation on Dask: shards of one random stream, one file per shard.

Boundary module (Dask). A job of ``N`` events with seed ``S`` is cut into shards
``(seed, shard index, global event range)``; the shard boundaries lie on the
global batch grid of :mod:`dyroot.generate`, and every event draws its noise from
the counter-based stream keyed by ``(S, global index)`` (:mod:`dyroot.random`),
so the merged templates equal a single-process run with the same seed, backend
and batch size **bin for bin**, however many workers ran them, in whatever order.

* Without a scheduler address a :class:`distributed.LocalCluster` runs one
  single-threaded worker process per core (loopback only).
* Each shard writes its own file ``<output stem>.shards/shard-<i>-of-<K>.root``
  (atomic: temporary file + rename), with the shard's provenance.
* Re-running skips shards whose file exists and whose provenance matches the
  job (bundle hash, seed, event range, backend, batch size, binnings,
  selection, categories); a file from a different job is an error unless
  ``force``.
* A shard whose worker dies is rescheduled by the scheduler on another worker
  (``distributed.scheduler.allowed-failures``); a shard that raises is retried
  ``retries`` times.

Example:
    >>> [(s.first_event, s.n_events) for s in plan_shards(10_000, shards=3, batch_size=1000)]
    [(0, 4000), (4000, 4000), (8000, 2000)]
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .exceptions import ConfigError, InputError, OutputExistsError
from .features import DEFAULT_BINNING, Binning
from .templates import Templates

__all__ = ["Shard", "plan_shards", "shard_path", "run_shard", "generate_distributed"]

#: Provenance keys that must agree for a shard file to count as finished.
_MATCH_KEYS = ("bundle_hash", "seed", "first_event", "n_events", "backend", "batch_size", "binning",
               "extra_binnings", "selection", "categories")


@dataclass(frozen=True)
class Shard:
    """One shard of a job: ``n_events`` events from GLOBAL index ``first_event``.

    Args:
        index: shard number, ``0 .. count - 1``.
        count: number of shards of the job.
        first_event: global index of its first event.
        n_events: number of events.
    """

    index: int
    count: int
    first_event: int
    n_events: int


def plan_shards(
    n_events: int, *, first_event: int = 0, shards: int | None = None, shard_size: int | None = None,
    batch_size: int,
) -> list[Shard]:
    """Cut ``[first_event, first_event + n_events)`` into shards on the batch grid.

    Args:
        n_events: events of the whole job.
        first_event: global index of the job's first event.
        shards: number of shards wanted (exclusive with ``shard_size``).
        shard_size: events per shard (rounded up to a multiple of ``batch_size``).
        batch_size: the generator's batch size; every inner boundary is a
            multiple of it, so shards see the batches of a single-process run.

    Returns:
        The shards, in order (fewer than asked when ``n_events`` is small).

    Raises:
        ConfigError: for invalid sizes.
    """
    if n_events <= 0 or batch_size <= 0 or first_event < 0:
        raise ConfigError(f"need n_events > 0 and batch_size > 0 (got {n_events}, {batch_size})")
    if (shards is None) == (shard_size is None):
        raise ConfigError("give exactly one of shards (a count) and shard_size")
    if shards is not None and shards < 1:
        raise ConfigError(f"the number of shards must be positive, got {shards}")
    wanted = math.ceil(n_events / shards) if shards is not None else int(shard_size or 1)
    size = max(1, math.ceil(wanted / batch_size)) * batch_size
    end = first_event + n_events
    start = (first_event // batch_size) * batch_size
    cuts = [first_event]
    c = start + size
    while c < end:
        cuts.append(c)
        c += size
    cuts.append(end)
    count = len(cuts) - 1
    return [Shard(i, count, cuts[i], cuts[i + 1] - cuts[i]) for i in range(count)]


def shard_path(output: str | os.PathLike[str], shard: Shard) -> pathlib.Path:
    """The file of a shard: ``<output stem>.shards/shard-<i>-of-<K>.root`` next to ``output``.

    Example:
        >>> shard_path("out/templates.root", Shard(3, 16, 0, 1)).as_posix()
        'out/templates.shards/shard-00003-of-00016.root'
    """
    out = pathlib.Path(output)
    return out.with_name(out.stem + ".shards") / f"shard-{shard.index:05d}-of-{shard.count:05d}.root"


_BUNDLES: dict[str, Any] = {}


def run_shard(
    bundle: Any, shard: Shard, seed: int, path: str, options: Mapping[str, Any],
    hook: Callable[[Shard], None] | None = None,
) -> str:
    """Generate one shard and write its file (runs on a worker).

    Args:
        bundle: a bundle directory (loaded once per worker process) or a loaded bundle.
        shard: the shard.
        seed: the job's seed.
        path: the shard file.
        options: keyword arguments of :func:`dyroot.generate.generate_templates`.
        hook: called with the shard before it runs (fault injection in tests).

    Returns:
        ``path``.
    """
    from .generate import generate_templates, resolve_bundle

    if hook is not None:
        hook(shard)
    if isinstance(bundle, (str, os.PathLike)):
        key = str(bundle)
        if key not in _BUNDLES:
            _BUNDLES[key] = resolve_bundle(bundle)
        bundle = _BUNDLES[key]
    t = generate_templates(bundle, shard.n_events, seed, first_event=shard.first_event, progress=False, **options)
    t.provenance["shard"] = {"index": shard.index, "count": shard.count}
    t.write(path, force=True)
    return path


def _finished(path: pathlib.Path, expected: Mapping[str, Any], force: bool) -> Templates | None:
    if not path.exists():
        return None
    try:
        t = Templates.read(path)
    except Exception:  # a truncated or foreign file: ours to redo (writes are atomic, so rare)
        return None
    rec = t._provenance_record()
    diff = [k for k in _MATCH_KEYS if k in expected and rec.get(k) != expected[k]]
    if diff:
        if force:
            return None
        msg = (f"shard file {path} belongs to a different job ({', '.join(diff)} differ); remove "
               f"{path.parent} or pass --force to regenerate it")
        raise OutputExistsError(msg)
    return t


def _expected(bundle_hash: Any, seed: int, shard: Shard, options: Mapping[str, Any], sel: Any, cats: Any,
              backend: str) -> dict[str, Any]:
    from .templates import _binning_dict

    b = options.get("binning", DEFAULT_BINNING)
    return {"bundle_hash": bundle_hash, "seed": seed, "first_event": shard.first_event, "n_events": shard.n_events,
            "backend": backend, "batch_size": options["batch_size"], "binning": _binning_dict(b),
            "extra_binnings": [_binning_dict(x) for x in options.get("extra_variables", ())],
            "selection": sel, "categories": cats}


def generate_distributed(
    bundle: Any, n_events: int, seed: int, output: str | os.PathLike[str], *,
    backend: str = "sofie", device: str = "cpu", threads: int | None = 1, batch_size: int | None = None,
    first_event: int = 0, binning: Binning = DEFAULT_BINNING, extra_variables: Sequence[str | Binning] = (),
    shards: int | None = None, scheduler: str | None = None, workers: int | None = None,
    retries: int = 2, force: bool = False, progress: bool = True, client: Any = None,
    hook: Callable[[Shard], None] | None = None,
) -> Templates:
    """Generate on a Dask cluster, one file per shard, and merge.

    Args:
        bundle: bundle directory (each worker loads it) or a loaded bundle (sent to the workers).
        n_events, seed, backend, device, threads, batch_size, first_event, binning, extra_variables:
            as :func:`dyroot.generate.generate_templates` (``threads`` per shard, default 1).
        output: the final templates file; shards go to ``<stem>.shards/`` beside it. With a
            remote scheduler, the output directory and the bundle must be on a file system
            the workers share (absolute paths are sent).
        shards: number of shards (default: 4 per worker).
        scheduler: address of a running scheduler (``tcp://host:8786``); ``None``
            starts a LocalCluster on this machine.
        workers: LocalCluster worker processes (default: the number of cores).
        retries: re-runs of a shard that raised.
        force: regenerate shard files that belong to a different job.
        progress: progress bar over events.
        client: an existing ``distributed.Client`` (overrides ``scheduler``).
        hook: called on the worker with each shard before it runs (tests).

    Returns:
        The merged raw-count templates (not yet written to ``output``).

    Raises:
        ConfigError: for invalid sizes.
        OutputExistsError: if a shard file belongs to a different job and not ``force``.
    """
    from ._optional import import_optional
    from .generate import DEFAULT_BATCH_SIZE, _plan, resolve_bundle, resolve_extra_variables

    distributed = import_optional("distributed")
    output = pathlib.Path(output).resolve()  # workers may run elsewhere: absolute paths (shared file system)
    threads = threads or 1  # one process per core: one thread per shard unless asked otherwise
    kind = "cuda" if device.startswith("cuda") else "cpu"
    batch_size = int(batch_size or DEFAULT_BATCH_SIZE[kind])
    extra = resolve_extra_variables(extra_variables)
    loaded = resolve_bundle(bundle)
    plan = _plan(loaded, n_events, seed, first_event, binning, extra, batch_size)
    options = {"backend": backend, "device": device, "threads": threads, "batch_size": batch_size,
               "binning": binning, "extra_variables": extra}
    own: list[Any] = []
    start = time.perf_counter()
    try:
        if client is None:
            if scheduler:
                client = distributed.Client(scheduler)
            else:
                nw = int(workers or os.cpu_count() or 1)
                cluster = distributed.LocalCluster(n_workers=nw, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address=None,
                                                   silence_logs=logging.ERROR)
                own.append(cluster)
                client = distributed.Client(cluster)
            own.insert(0, client)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        todo_shards = plan_shards(n_events, first_event=first_event, shards=shards or 4 * n_workers,
                                  batch_size=batch_size)
        sel, cats = plan.selection.to_dict(), plan.scheme.to_list()
        bundle_hash = getattr(loaded, "hash", None)
        if isinstance(bundle, (str, os.PathLike)):
            ref: Any = str(pathlib.Path(bundle).resolve())
        elif type(loaded).__module__ == "dyroot.bundle" and hasattr(loaded, "path"):
            ref = str(loaded.path)  # workers load it from disk (shared file system) once each
        else:
            ref = client.scatter(loaded, broadcast=True)
        done: dict[int, Templates] = {}
        futures = {}
        for s in todo_shards:
            path = shard_path(output, s)
            t = _finished(path, _expected(bundle_hash, seed, s, options, sel, cats, backend), force)
            if t is not None:
                done[s.index] = t
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fut = client.submit(run_shard, ref, s, seed, str(path), options, hook, retries=retries, pure=False,
                                key=f"dyroot-shard-{seed}-{s.first_event}-{s.n_events}-{time.time_ns()}")
            futures[fut] = s
        from .generate import _progress

        with _progress(sum(s.n_events for s in futures.values()), progress, f"dask[{len(futures)} shards]") as bar:
            for fut in distributed.as_completed(list(futures)):
                s = futures[fut]
                done[s.index] = Templates.read(fut.result())
                bar.update(s.n_events)
    finally:
        for obj in own:
            obj.close()
    parts = [done[i] for i in sorted(done)]
    if len(parts) != len(todo_shards):
        raise InputError(f"only {len(parts)} of {len(todo_shards)} shards finished")
    merged = Templates.merge(parts)
    merged.provenance.pop("shard", None)
    merged.provenance.update({
        "distributed": {"shards": len(todo_shards), "skipped": len(todo_shards) - len(futures),
                        "scheduler": scheduler or "LocalCluster", "workers": n_workers},
        "host": None, "wall_s": time.perf_counter() - start,
    })
    return merged
