"""Session fixtures of the model stage (owned by that stage's tests)."""

from __future__ import annotations
