"""Warnings issued by dyroot; filter them all with ``DyrootWarning``."""

from __future__ import annotations

__all__ = ["DyrootWarning", "InputWarning", "FitWarning", "PerformanceWarning"]


class DyrootWarning(UserWarning):
    """Base class of every dyroot warning."""


class InputWarning(DyrootWarning):
    """Something in the input was dropped or repaired on request."""


class FitWarning(DyrootWarning):
    """A fit converged only after retries, or with a poor covariance."""


class PerformanceWarning(DyrootWarning):
    """The job will run, but slower than it could (no BLAS found, JIT fallback...)."""
