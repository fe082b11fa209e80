"""Exceptions raised by dyroot.

Each subclasses the builtin a physicist would catch anyway (``ValueError``,
``KeyError``, ``FileNotFoundError``, ``RuntimeError``), so ``except ValueError``
keeps working, and carries a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

__all__ = [
    "DyrootError",
    "InputError",
    "MissingInputError",
    "MissingBranchError",
    "CorruptFileError",
    "UnitsError",
    "NonFiniteError",
    "EmptySelectionError",
    "WeightError",
    "BundleError",
    "ConfigError",
    "BuildError",
    "ExportError",
    "FitError",
    "OutputExistsError",
    "nearest",
]


class DyrootError(Exception):
    """Base class of every dyroot error."""


class InputError(DyrootError, ValueError):
    """The input data are not usable as they are."""


class MissingInputError(DyrootError, FileNotFoundError):
    """An input file (or a glob) matched nothing."""


class MissingBranchError(DyrootError, KeyError):
    """A tree, branch or key is missing; the message lists the nearest names.

    Args:
        what: what was looked for (``"branch"``, ``"tree"``...).
        name: the missing name.
        available: the names that do exist, to suggest from.
        where: the file (or object) that was searched.
    """

    def __init__(self, what: str, name: str, available: Iterable[str], where: str = "") -> None:
        self.what, self.name, self.available = what, name, sorted(available)
        close = nearest(name, self.available)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        inside = f" in {where}" if where else ""
        listing = ", ".join(self.available[:30]) + (" ..." if len(self.available) > 30 else "")
        self.message = f"no {what} {name!r}{inside}{hint} (available: {listing or 'none'})"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class CorruptFileError(InputError):
    """A file exists but cannot be read as ROOT (truncated, zombie, not ROOT)."""


class UnitsError(InputError):
    """The values do not look like the declared units (MeV read as GeV...)."""


class NonFiniteError(InputError):
    """NaN or infinite values were found and the policy is to refuse them."""


class EmptySelectionError(InputError):
    """The selection kept no event."""


class WeightError(InputError):
    """The event weights cannot be used (non-positive total, non-finite...)."""


class BundleError(DyrootError, ValueError):
    """A model bundle is incomplete, corrupt or from an incompatible version."""


class ConfigError(DyrootError, ValueError):
    """A configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems in the configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )
        super().__init__(text)


class BuildError(DyrootError, RuntimeError):
    """Compiling or loading C++ code (SOFIE model, libdyroot) failed."""


class ExportError(DyrootError, RuntimeError):
    """A model could not be exported to ONNX in a form SOFIE evaluates correctly."""


class FitError(DyrootError, RuntimeError):
    """A fit did not converge; ``result`` holds what the minimiser returned."""

    def __init__(self, message: str, result: Any = None) -> None:
        self.result = result
        super().__init__(message)


class OutputExistsError(DyrootError, FileExistsError):
    """An output exists already and would be overwritten (pass ``force=True``)."""


def nearest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to ``name`` (case-insensitive), best first.

    Example:
        >>> nearest("Muon_PT", ["Muon_pt", "Muon_eta", "nMuon"])
        ['Muon_pt']
    """
    cands = list(candidates)
    lower = {c.lower(): c for c in cands}
    if name.lower() in lower:  # a case slip: that is the one
        return [lower[name.lower()]]
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]
