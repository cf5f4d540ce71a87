"""What the report calls things, and in which order it shows them (one place for every section)."""

from __future__ import annotations

from collections.abc import Iterable

SECTION_TITLES = (
    "What HEAL added",
    "Stages",
    "Counts and drop reasons",
    "Teacher pass rates",
    "Corner cases: repaired and kept by PURE",
    "Entropy curves and breakpoints",
    "Curriculum composition",
    "Training loss",
    "Evaluation",
)
SET_ORDER = ("base", "rs", "flat", "heal-1", "heal-2", "heal-3")
SET_LABELS = {
    "base": "base student",
    "rs": "RS-SFT (rs)",
    "flat": "flat (all data)",
    "heal-1": "HEAL stage I",
    "heal-2": "HEAL stage II",
    "heal-3": "HEAL stage III",
}


def rank(name: str) -> int:
    """Position of a set / checkpoint name in the report's row order (unknown names last)."""
    return SET_ORDER.index(name) if name in SET_ORDER else len(SET_ORDER)


def ordered(names: Iterable[str]) -> list[str]:
    """Set or checkpoint names in the report's row order, unknown ones last by name."""
    return sorted(names, key=lambda n: (rank(n), n))
