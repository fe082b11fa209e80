r"""Inputs of ``dyroot validate``: generated events, the training and reference events, ensembles.

Orchestration helpers for :mod:`dyroot.validate` (no ROOT: events are read through
:mod:`dyroot.io`). :func:`generate_events` draws events with a bundle's torch sampler on
dyroot's counter-based streams, exactly the events every generation backend makes
for the same seed and batch grid; :func:`load_training_events` recovers the events a
bundle was trained on (the exact training part of its seeded split when possible);
:func:`read_sample` reads a file or takes an in-memory event dict.

Example:
    >>> from dyroot.validate_inputs import read_sample
    >>> from dyroot.features import DEFAULT_CATEGORIES
    >>> ev, rec = read_sample({"mll": np.array([120.0]), "ptll": np.array([5.0]), "mu1_eta": np.array([0.1]),
    ...                        "mu2_eta": np.array([0.2])}, DEFAULT_CATEGORIES)
    >>> int(ev["category"][0]), rec["n"]
    (0, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .exceptions import BundleError, ConfigError
from .features import FLOW_FEATURES, CategoryScheme, Selection, muons_from_dimuon

__all__ = ["generate_events", "load_training_events", "read_sample", "load_ensemble_members", "bundle_scheme",
           "bundle_selection"]


def bundle_scheme(bundle: Any) -> CategoryScheme:
    """The bundle's category scheme (from its ``config``)."""
    return CategoryScheme.from_list(bundle.config["categories"])


def bundle_selection(bundle: Any) -> Selection:
    """The bundle's analysis selection (from its ``config``)."""
    return Selection.from_dict(bundle.config["selection"])


def generate_events(
    bundle: Any,
    n: int,
    seed: int,
    *,
    first_event: int = 0,
    batch_size: int = 65_536,
    device: str = "cpu",
    selection: Selection | None = None,
) -> dict[str, np.ndarray]:
    """Generate events with the bundle's torch sampler on dyroot's random streams.

    Event ``i`` gets the noise, azimuth and context draw of :func:`dyroot.random.noise`
    for ``(seed, i)``, as in every generation backend; the muons follow from
    :func:`dyroot.features.muons_from_dimuon`, the category from the bundle's scheme.

    Args:
        bundle: a bundle directory or a loaded bundle (``config``, ``sample``).
        n: events to generate (before cuts).
        seed: the stream seed.
        first_event: global index of the first event.
        batch_size: events per batch.
        device: torch device.
        selection: keep only events passing it (``None``: keep all).

    Returns:
        Event columns (``FLOW_FEATURES``, ``phill``, ``MUON_COLUMNS``, ``category``
        int32) in float64, plus ``event_index`` (int64) and unit ``weight``.

    Raises:
        BundleError: for a context the generator cannot draw (user variables).
    """
    from ._optional import import_optional
    from .generate import resolve_bundle
    from .random import choose_category, noise

    torch = import_optional("torch")
    b = resolve_bundle(bundle)
    if hasattr(b, "to"):
        b.to(device)
    ctx = b.config.get("context")
    if ctx is not None and ctx.get("kind") not in ("category", "one_hot"):
        msg = (f"the bundle's context is {ctx.get('kind')!r}: validation can only draw a category context; "
               "validate an unconditional or category-conditional model")
        raise BundleError(msg)
    scheme = bundle_scheme(b)
    parts = []
    for lo in range(first_event, first_event + n, batch_size):
        m = min(batch_size, first_event + n - lo)
        d = noise(seed, lo, m)
        z = torch.from_numpy(np.ascontiguousarray(d.normals)).to(device)
        if ctx is None:
            x = b.sample(z)
        else:
            c = np.eye(len(ctx["fractions"]), dtype=np.float32)[choose_category(d.u_context, ctx["fractions"])]
            x = b.sample(z, torch.from_numpy(c).to(device))
        x = x.detach().to("cpu").numpy().astype(np.float64)
        ev = {f: x[:, k] for k, f in enumerate(FLOW_FEATURES)}
        ev["phill"] = np.asarray(d.phill, dtype=np.float64)
        ev.update(muons_from_dimuon(ev["mll"], ev["ptll"], ev["yll"], ev["costheta"], ev["phi_cs"], ev["phill"]))
        ev["category"] = scheme.assign(ev)
        ev["event_index"] = np.arange(lo, lo + m, dtype=np.int64)
        if selection is not None:
            keep = selection.mask(ev)
            ev = {k: v[keep] for k, v in ev.items()}
        parts.append(ev)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["weight"] = np.ones(len(out["mll"]))
    return out


def _sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sample(source: Any, scheme: CategoryScheme) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Events from a path or glob (through :func:`dyroot.io.read_events`) or an event dict.

    The category is (re)assigned from the kinematics with ``scheme``; unit weights are
    added when there are none.

    Returns:
        ``(events, record)``: the columns, and where they came from (source, size, sha256).
    """
    if isinstance(source, Mapping):
        ev = {k: np.asarray(v) for k, v in source.items()}
        ev.setdefault("weight", np.ones(len(ev["mll"])))
        ev["category"] = scheme.assign(ev)
        return ev, {"source": "in-memory events", "n": int(len(ev["mll"]))}
    from .io import read_events

    ev = read_events(source, categories=scheme)
    record: dict[str, Any] = {"source": str(source), "n": int(len(ev["mll"]))}
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        record["sha256"] = _sha256(source)
    return ev, record


def load_training_events(bundle: Any, training: Any = None) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """The events the bundle's flow was trained on.

    Args:
        bundle: a loaded bundle.
        training: a path, an event dict, or ``None`` to use the file recorded in the
            bundle's ``provenance.json`` (``source.files``).

    Returns:
        ``(events or None, record)``; the events pass the training pre-selection and,
        when the training split can be reproduced (same number of events as the
        provenance records), are exactly the training part (not the validation part).
    """
    record: dict[str, Any] = {}
    prov: dict[str, Any] = {}
    path = getattr(bundle, "path", None)
    if path is not None and (Path(path) / "provenance.json").is_file():
        prov = json.loads((Path(path) / "provenance.json").read_text())
    if training is None:
        files = (prov.get("source") or {}).get("files") or []
        if not files or not all(Path(f).is_file() for f in files):
            record["skipped"] = ("no training events: the bundle's provenance names "
                                 f"{files or 'no file'}, not readable here; pass --training")
            return None, record
        training = files if len(files) > 1 else files[0]
        record["from_provenance"] = True
    ev, rec = read_sample(training, bundle_scheme(bundle))
    record.update(rec)
    sel_cfg = bundle.config.get("training_selection")
    if sel_cfg is None:
        return ev, record
    from .train import split_indices, training_arrays

    _, _, mask = training_arrays(ev, Selection.from_dict(sel_cfg))
    ev = {k: v[mask] for k, v in ev.items()}
    n_prov = prov.get("n_events")
    tcfg = ((prov.get("training") or {}).get("config") or {})
    if n_prov == len(ev["mll"]) and "val_fraction" in tcfg and "seed" in tcfg:
        tr, _ = split_indices(len(ev["mll"]), float(tcfg["val_fraction"]), int(tcfg["seed"]))
        ev = {k: v[tr] for k, v in ev.items()}
        record["split"] = "the training part of the seeded training/validation split (exact)"
    else:
        record["split"] = ("every event of the training pre-selection (the training/validation split could not "
                           "be reproduced; G then refers to the pre-selected size)")
    record["n_training"] = int(len(ev["mll"]))
    return ev, record


def load_ensemble_members(ensemble: Any) -> tuple[list[Any], str | None]:
    """The members of an ensemble directory (or a list of bundles) and its mode.

    Raises:
        ConfigError: with fewer than 3 members.
    """
    if isinstance(ensemble, (str, os.PathLike)):
        from .bundle import load_ensemble

        meta_path = Path(ensemble) / "ensemble.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        members, mode = load_ensemble(ensemble), meta.get("mode")
    else:
        members, mode = list(ensemble), None
    if len(members) < 3:
        msg = f"an ensemble of {len(members)} members is too small for a variance; train K >= 3 (5-10 is better)"
        raise ConfigError(msg)
    return members, mode

