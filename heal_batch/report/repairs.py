"""The report's repair sections: corner cases from teacher failure to training data, and GEAR's
entropy breakpoints on example trajectories."""

from __future__ import annotations

from collections import Counter

from heal_batch.report import plots
from heal_batch.report.collect import RunData
from heal_batch.report.common import find_mapping, problem_buckets, progress, unavailable
from heal_batch.report.render import Figure, Pre, Table

ENTROPY_INTRO = (
    "Failed teacher trajectories that GEAR repaired: token entropy, the breakpoint where the "
    "repair replaced the rest, and the text around it (up to 3 problems; repairs kept by PURE "
    "first)."
)


def corner_cases(data: RunData) -> list:
    """From teacher failure to training data: a table per step, heal-3's fates, PURE's ratios."""
    if data.repair is None:
        return unavailable(data, "repair", "no repairs or answer-guided samples (repair)")
    blocks = progress(data, "repair", "score", "curriculum")
    blocks += [
        "From teacher failure to training data (- : that stage has not run yet).",
        Table(["step", "corner: GEAR repairs", "hard: answer-guided"], _funnel_rows(data)),
    ]
    if fates := _heal3_fates(data):
        blocks.append(fates)
    if data.score and data.score.ratios:
        caption = (
            "PURE ratio per candidate kind; reference = naturally correct teacher trajectories "
            "(their q95 is the cut-off)."
        )
        blocks.append(Figure("pure_ratios", plots.pure_ratio_histogram(data.score.ratios), caption))
    elif data.score is None:
        blocks.append("Not run yet: no PURE scores (score).")
    return blocks


def _row(label: str, pair: tuple | None) -> list:
    """A funnel row: (corner, hard) counts, or '-' twice when that stage has not run."""
    corner, hard = pair if pair is not None else (None, None)
    return [label, "-" if corner is None else corner, "-" if hard is None else hard]


def _kinds(counts: dict | None) -> tuple | None:
    if counts is None:
        return None
    return len(counts.get("repair", ())), len(counts.get("answer_guided", ()))


def _funnel_rows(data: RunData) -> list[list]:
    buckets = Counter(problem_buckets(data).values()) if data.problems else None
    reasons = {
        b: Counter(s["reason"] for s in data.repair.summaries if s["bucket"] == b)
        for b in ("corner", "hard")
    }
    outcomes = sorted(set(reasons["corner"]) | set(reasons["hard"]))
    candidates = data.repair.candidates
    return [
        _row(
            "problems in bucket (teacher)",
            (buckets["corner"], buckets["hard"]) if buckets else None,
        ),
        _row(
            "problems attempted (repair)",
            (sum(reasons["corner"].values()), sum(reasons["hard"].values())),
        ),
        *[_row(f"  outcome: {r}", (reasons["corner"][r], reasons["hard"][r])) for r in outcomes],
        _row(
            "candidates (correct, hint-free)",
            (candidates["repair"], candidates["answer_guided"]),
        ),
        _row("scored by PURE (score)", _kinds(data.score.ratios if data.score else None)),
        _row("kept in training sets (curriculum)", _kinds(data.kept_ids)),
    ]


def _heal3_fates(data: RunData) -> str | None:
    """Kept and dropped counts (by reason) of every sample of the run in set heal-3."""
    final = (data.set_counters or {}).get("heal-3")
    drops = {
        k.removeprefix("dropped_"): v for k, v in (final or {}).items() if k.startswith("dropped_")
    }
    if not drops:
        return None
    fates = ", ".join(f"{k} {v}" for k, v in sorted(drops.items()))
    return (
        f"Fates of all samples of the run in set heal-3: kept {final.get('kept', 0)}, "
        f"dropped {fates} (PURE's rules: no_reasoning_after_cut, top_lambda, "
        "above_reference_q*, answer_not_derived_q*)."
    )


def entropy(data: RunData) -> list:
    if not data.examples:
        if data.repair is None or data.problems is None:
            return unavailable(
                data,
                "repair" if data.repair is None else "generate",
                "no GEAR repairs and teacher trajectories to show (repair, generate)",
            )
        return [
            (
                f"No example: none of the {data.repair.candidates['repair']} GEAR repair "
                "candidates has a breakpoint and a source trajectory in the generate output."
            )
        ]
    config = data.stages["repair"].config if "repair" in data.stages else {}
    gear = find_mapping(config, "search_fraction") or {}  # repair.gear as the run used it
    blocks: list = [ENTROPY_INTRO]
    states = {None: "curriculum not run", True: "kept by PURE", False: "not in a training set"}
    for i, ex in enumerate(data.examples):
        caption = f"{ex.candidate_id} ({ex.strategy}: {ex.reason}; {states[ex.kept]})"
        blocks.append(Figure(f"entropy_{i}", plots.trajectory_entropy(ex, gear), caption))
        blocks.append(
            Pre(f"...{ex.before}⟦breakpoint⟧{ex.after}...\nrepaired continuation: {ex.repaired}...")
        )
    return blocks
