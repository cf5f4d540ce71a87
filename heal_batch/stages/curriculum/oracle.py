"""PURE against the oracle on built-in problems: the labels score recorded, set against the fates.

Inputs: the ``oracle`` labels that score wrote on candidates of built-in problems (collected while
``rows.read_pool`` streams the shards, so nothing is read twice) and the fate table of
``sets.assign_fates``. Output: ``method.oracle.pure_vs_oracle``'s counters (``oracle_kept``,
``oracle_kept_derived``, ``oracle_derived``, ``oracle_rule_<reason>[_derived]``, ...), which the
heal-3 task adds to its counters so the report can state PURE's precision and recall; and per
set, ``kept_<kind>_derived``: how many of the set's examples of a kind the oracle calls derived
(``derived_in_set``), the figure the demo's guaranteed minimum is stated in.

A fate after PURE's (``contaminated``, ``duplicate``, ``near_duplicate``, ``cap``) means PURE kept
the candidate: those rules come later in ``sets.py``'s order.

    labels = {}
    pool = read_pool(shards, labels_reader(io.read, labels), pace, suffix)
    counters.update(oracle_counters(table, labels, pure.kinds))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from heal_batch.method.oracle import DERIVED, pure_vs_oracle

if TYPE_CHECKING:
    import polars as pl

AFTER_PURE = ("kept", "contaminated", "duplicate", "near_duplicate", "cap")

Reader = Callable[[str], Iterable[dict[str, Any]]]


def labels_reader(read: Reader, labels: dict[str, str]) -> Reader:
    """``read``, noting the ``oracle`` label of every record that has one into ``labels``."""

    def reading(address: str) -> Iterator[dict[str, Any]]:
        for record in read(address):
            if record.get("oracle"):
                labels[record["id"]] = record["oracle"]
            yield record

    return reading


def oracle_counters(
    table: pl.DataFrame, labels: dict[str, str], kinds: Sequence[str]
) -> dict[str, int]:
    """``pure_vs_oracle`` over the labelled candidates of the kinds PURE judges ({} if none)."""
    import polars as pl

    if not labels:
        return {}
    rows = table.filter(pl.col("id").is_in(list(labels)) & pl.col("kind").is_in(list(kinds)))
    pairs = [
        ("kept" if fate in AFTER_PURE else fate, labels[cid])
        for cid, fate in rows.select("id", "fate").iter_rows()
    ]
    return pure_vs_oracle(pairs) if pairs else {}


def derived_in_set(kept: pl.DataFrame, labels: dict[str, str]) -> dict[str, int]:
    """``kept_<kind>_derived`` for each kind of ``kept`` (a set's rows) with oracle labels."""
    import polars as pl

    if not labels:
        return {}
    rows = kept.filter(pl.col("id").is_in(list(labels)))
    out: dict[str, int] = {}
    for cid, kind in rows.select("id", "kind").iter_rows():
        key = f"kept_{kind}_derived"
        out[key] = out.get(key, 0) + int(labels[cid] == DERIVED)
    return out
