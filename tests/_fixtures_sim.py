"""Session fixtures of the sim stage (owned by that stage's tests)."""

from __future__ import annotations
