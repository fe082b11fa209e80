"""Session fixtures of the templates stage (owned by that stage's tests)."""

from __future__ import annotations
