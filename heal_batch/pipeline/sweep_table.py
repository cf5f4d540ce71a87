"""The sweep's comparison table: pure functions of each variant's counters and evaluate records.

Input: one dict per variant, the first being the reference::

    {"name": "strategy=random", "overrides": {"repair.gear.strategy": "random"},
     "repair": {"bucket_corner": 8, "kept_repair": 5, "kept": 7, "dropped_leak": 1, ...},
     "sets": {"heal-3": {"kept_repair": 4, "dropped_top_lambda": 1, "oracle_kept": 3, ...}},
     "evaluate": [{"checkpoint": "heal-3", "benchmark": "arith", "greedy_acc": 0.4, ...}]}

(``repair``: the repair run's summed counters; ``sets``: each curriculum task's counters by set
name; ``evaluate``: evaluate's result records; any of them may be missing). Output:
:func:`sweep_table` gives JSON-ready rows, :func:`render_markdown` the tables.

Columns, per variant:

- ``corner_problems`` (``bucket_corner``), ``verified_repairs`` (``kept_repair``: graded
  correct, an answer of their own, no leak) and ``repairs_per_corner_problem`` (their ratio);
  ``answer_guided`` (``kept_answer_guided``);
- ``leak_rate``: ``dropped_leak / (kept + dropped_leak)``, the share of correct samples rejected
  because they mention the hint;
- ``pure_keep_rate``: in the final HEAL set (heal-3), PURE-judged kinds kept over those kept plus
  those PURE's rules dropped (dedup, caps and contamination are left out of both);
- ``pure_precision`` / ``pure_recall`` against the oracle (built-in problems only,
  ``method.oracle.precision_recall``);
- what reached training: ``heal2_answer_guided`` (heal-2's ``kept_answer_guided``),
  ``heal3_repairs`` (heal-3's ``kept_repair``) and ``heal3_derived`` (those the oracle calls
  derived, ``kept_repair_derived``; built-in problems only).

Accuracy rows, per variant, checkpoint and benchmark: avg@n when the record has per-problem
``correct_counts`` (else greedy accuracy), and its difference from the first variant's same
checkpoint and benchmark with a 95 % interval: paired bootstrap over problems when both carry
``correct_counts`` (``evaluation.metrics.bootstrap_interval``), else a normal interval from the
two greedy standard errors (unpaired), else none.
"""

from __future__ import annotations

import math
from typing import Any

FINAL_SET = "heal-3"
PURE_KINDS = ("repair", "answer_guided")
PURE_RULES = ("top_lambda", "no_steps_after_cut", "no_boxed_answer", "no_reasoning_after_cut")
PURE_RULE_PREFIXES = ("above_reference_q", "answer_not_derived_q")
Z95 = 1.959964
RESAMPLES = 2000

COLUMNS = (
    ("corner_problems", "corner problems"),
    ("verified_repairs", "verified repairs"),
    ("repairs_per_corner_problem", "repairs / corner problem"),
    ("answer_guided", "answer-guided kept"),
    ("leak_rate", "leak rate"),
    ("pure_keep_rate", "PURE keep rate"),
    ("pure_precision", "PURE precision"),
    ("pure_recall", "PURE recall"),
    ("heal2_answer_guided", "heal-2 answer-guided"),
    ("heal3_repairs", "heal-3 repairs"),
    ("heal3_derived", "heal-3 derived repairs"),
)


def sweep_table(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"rows": [...], "accuracy": [...]}``: one row per variant, one accuracy row per
    (variant, checkpoint, benchmark), differences against ``variants[0]``."""
    rows = [
        {"variant": v["name"], "overrides": v.get("overrides", {}), **variant_metrics(v)}
        for v in variants
    ]
    reference = _cells(variants[0]) if variants else {}
    accuracy = []
    for v in variants:
        for cell, record in _cells(v).items():
            accuracy.append(
                {
                    "variant": v["name"],
                    "checkpoint": cell[0],
                    "benchmark": cell[1],
                    **accuracy_delta(record, reference.get(cell)),
                }
            )
    return {
        "reference": variants[0]["name"] if variants else None,
        "rows": rows,
        "accuracy": accuracy,
    }


def variant_metrics(variant: dict[str, Any]) -> dict[str, Any]:
    """The repair and PURE columns of one variant (None where its counters are missing)."""
    from heal_batch.method.oracle import precision_recall

    repair = variant.get("repair")
    final = (variant.get("sets") or {}).get(FINAL_SET)
    out: dict[str, Any] = dict.fromkeys(key for key, _ in COLUMNS)
    if repair is not None:
        corner, kept = repair.get("bucket_corner", 0), repair.get("kept_repair", 0)
        leaked = repair.get("dropped_leak", 0)
        out.update(
            corner_problems=corner,
            verified_repairs=kept,
            repairs_per_corner_problem=_ratio(kept, corner),
            answer_guided=repair.get("kept_answer_guided", 0),
            leak_rate=_ratio(leaked, repair.get("kept", 0) + leaked),
        )
    if (stage2 := (variant.get("sets") or {}).get("heal-2")) is not None:
        out["heal2_answer_guided"] = stage2.get("kept_answer_guided", 0)
    if final is not None:
        out["heal3_repairs"] = final.get("kept_repair", 0)
        out["heal3_derived"] = final.get("kept_repair_derived")
        judged_kept = sum(final.get(f"kept_{kind}", 0) for kind in PURE_KINDS)
        dropped = sum(n for key, n in final.items() if _is_pure_drop(key))
        precision, recall = None, None
        if final.get("oracle_candidates"):
            precision, recall = precision_recall(final)
        out.update(
            pure_keep_rate=_ratio(judged_kept, judged_kept + dropped),
            pure_precision=precision,
            pure_recall=recall,
        )
    return out


def accuracy_delta(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """One evaluate record's accuracy and its difference from ``reference`` with an interval."""
    metric, value = _accuracy(record)
    out = {"metric": metric, "accuracy": value, "delta": None, "ci": None, "interval": None}
    if reference is None or value is None:
        return out
    ref_metric, ref_value = _accuracy(reference)
    if ref_metric != metric or ref_value is None:
        return out
    out["delta"] = value - ref_value
    diffs = _paired(record, reference)
    if diffs:
        from heal_batch.evaluation.metrics import bootstrap_interval

        seed = (reference.get("seeds") or {}).get("bootstrap") or 0
        out["ci"] = list(bootstrap_interval(diffs, seed, resamples=RESAMPLES))
        out["interval"] = "paired bootstrap over problems"
    elif metric == "greedy_acc" and _has_stderr(record, reference):
        half = Z95 * math.hypot(record["greedy_acc_stderr"], reference["greedy_acc_stderr"])
        out["ci"] = [out["delta"] - half, out["delta"] + half]
        out["interval"] = "normal, unpaired (greedy stderr)"
    return out


def render_markdown(table: dict[str, Any], title: str = "Sweep") -> str:
    """The two tables as markdown (``-`` where a value is missing)."""
    reference = f"Differences are against the first variant, `{table['reference']}`."
    lines = [f"# {title}", "", reference, ""]
    lines += _md_table(
        ["variant", *(label for _, label in COLUMNS)],
        [[r["variant"], *(_fmt(r[key]) for key, _ in COLUMNS)] for r in table["rows"]],
    )
    if table["accuracy"]:
        lines += ["", "Student accuracy (avg@n with per-problem counts, else greedy):", ""]
        head = [
            "variant",
            "checkpoint",
            "benchmark",
            "metric",
            "accuracy",
            "Δ vs first [95 % interval]",
        ]
        rows = [
            [
                a["variant"],
                a["checkpoint"],
                a["benchmark"],
                a["metric"] or "-",
                _fmt(a["accuracy"]),
                _delta(a),
            ]
            for a in table["accuracy"]
        ]
        lines += _md_table(head, rows)
    else:
        lines += ["", "No evaluate records yet: no accuracy rows."]
    return "\n".join(lines) + "\n"


def _is_pure_drop(key: str) -> bool:
    reason = key.removeprefix("dropped_")
    return key.startswith("dropped_") and (
        reason in PURE_RULES or reason.startswith(PURE_RULE_PREFIXES)
    )


def _cells(variant: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.get("checkpoint"), r.get("benchmark")): r for r in variant.get("evaluate") or []}


def _accuracy(record: dict[str, Any]) -> tuple[str | None, float | None]:
    counts, n = record.get("correct_counts"), record.get("n_samples") or 0
    if counts and n:
        return "avg_at_n", sum(counts) / (n * len(counts))
    if record.get("greedy_acc") is not None:
        return "greedy_acc", record["greedy_acc"]
    return None, None


def _paired(record: dict[str, Any], reference: dict[str, Any]) -> list[float] | None:
    a, b = record.get("correct_counts"), reference.get("correct_counts")
    n_a, n_b = record.get("n_samples") or 0, reference.get("n_samples") or 0
    if not a or not b or len(a) != len(b) or not n_a or not n_b:
        return None
    return [x / n_a - y / n_b for x, y in zip(a, b, strict=True)]


def _has_stderr(record: dict[str, Any], reference: dict[str, Any]) -> bool:
    return all(r.get("greedy_acc_stderr") is not None for r in (record, reference))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _delta(row: dict[str, Any]) -> str:
    if row["delta"] is None:
        return "-"
    text = f"{row['delta']:+.3f}"
    return text + (f" [{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]" if row["ci"] else "")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
