"""Evaluation against the RS-SFT baseline: paired differences on the same problems, and the
training budget behind each row.

Inputs: evaluate's result records (``correct_counts``: correct samples of ``n_samples`` per
problem, in the benchmark's document order, so two checkpoints' lists pair problem by problem)
and the checkpoints' training runs (``steps``, ``examples``, ``base``). Outputs: report blocks.

- **Paired difference**: per problem, the checkpoint's share of correct samples minus RS-SFT's
  (the sampled pass's ``correct_counts``; without one, the greedy pass's ``greedy_correct``);
  the mean over problems, with a 95 % percentile-bootstrap interval over problems
  (``evaluation.metrics.bootstrap_interval``, ``RESAMPLES`` resamples, the records' bootstrap
  seed). Pairing removes the problems' own difficulty from the comparison, so the interval is
  narrower than the two unpaired ones. Records without per-problem results (written before
  ``greedy_correct`` existed) are named instead.
- **Budget**: the optimizer steps of each checkpoint's own stage, the steps in all (a HEAL stage
  continues the previous stage's checkpoint: ``base`` names it) and its set's examples. A
  checkpoint whose steps in all differ from RS-SFT's is named in words: its difference from RS-SFT
  mixes the data with the training length.

    blocks = paired_blocks(records) + budget_blocks(training_runs)
"""

from __future__ import annotations

from typing import Any

from heal_batch.report.labels import SET_LABELS, ordered
from heal_batch.report.records import TrainingRun
from heal_batch.report.render import Table

BASELINE = "rs"
RESAMPLES = 2000  # per cell; the report stays fast on 500-problem benchmarks


def paired_blocks(records: list[dict[str, Any]]) -> list:
    """Each checkpoint minus RS-SFT on the same problems, per benchmark with per-problem counts."""
    from heal_batch.evaluation.metrics import bootstrap_interval

    by_cell = {(r["checkpoint"], r["benchmark"]): r for r in records}
    benchmarks = sorted({b for (c, b), r in by_cell.items() if c == BASELINE and _shares(r)})
    if not benchmarks:
        why = "RS-SFT (rs) was not evaluated"
        if any(c == BASELINE for c, _ in by_cell):
            why = "its records hold no per-problem results"
        return [f"No paired comparison with RS-SFT on the same problems: {why}."]
    rows = []
    for name in ordered({c for c, _ in by_cell} - {BASELINE}):
        cells = []
        for b in benchmarks:
            diffs = _differences(by_cell.get((name, b)), by_cell[BASELINE, b])
            if diffs is None:
                cells.append("-")
                continue
            seed = (by_cell[BASELINE, b].get("seeds") or {}).get("bootstrap") or 0
            lo, hi = bootstrap_interval(diffs, seed, resamples=RESAMPLES)
            cells.append(f"{sum(diffs) / len(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}]")
        rows.append([SET_LABELS.get(name, name), *cells])
    text = (
        "Each checkpoint minus RS-SFT on the same problems (per problem: share of correct "
        "samples of the sampled pass, else greedy correct 1/0; mean over problems [95 % paired "
        "bootstrap interval]; an interval that holds 0 is no evidence of a difference; - : no "
        "per-problem results to pair):"
    )
    head = ["checkpoint", *(f"{b} vs RS-SFT" for b in benchmarks)]
    return [text, Table(head, rows)]


def budget_blocks(training: list[TrainingRun] | None) -> list:
    """Steps and examples behind each checkpoint, and the rows whose step budget is not RS's."""
    if not training:
        return []
    runs = {r.set: r for r in training}
    rows, totals = [], {}
    for name in ordered(runs):
        run, chain = runs[name], _chain(runs, name)
        totals[name] = (
            None if any(runs[n].steps is None for n in chain) else sum(runs[n].steps for n in chain)
        )
        rows.append(
            [
                SET_LABELS.get(name, name),
                " → ".join(chain),
                _num(run.steps),
                _num(totals[name]),
                _num(run.examples),
            ]
        )
    intro = (
        "What each row trained on (a HEAL stage continues the previous stage's "
        "checkpoint, so its steps in all add up the stages):"
    )
    head = [
        "checkpoint",
        "stages",
        "optimizer steps (own stage)",
        "optimizer steps in all",
        "examples (own set)",
    ]
    return [intro, Table(head, rows), *_budget_note(totals)]


def _differences(record: dict | None, baseline: dict) -> list[float] | None:
    """Per-problem share differences, None when the two records do not pair problem by problem."""
    a, b = _shares(record), _shares(baseline)
    if a is None or b is None or len(a) != len(b):
        return None
    return [x - y for x, y in zip(a, b, strict=True)]


def _shares(record: dict | None) -> list[float] | None:
    """Per problem, the share of correct samples (sampled pass), else greedy 1/0; None without
    per-problem results."""
    if not record:
        return None
    n = record.get("n_samples") or 0
    if record.get("correct_counts") and n:
        return [c / n for c in record["correct_counts"]]
    greedy = record.get("greedy_correct")
    return [float(x) for x in greedy] if greedy else None


def _chain(runs: dict[str, TrainingRun], name: str) -> list[str]:
    """The sets trained in order up to ``name`` (``base`` back to the student)."""
    chain = [name]
    while (base := runs[chain[0]].base) in runs and base not in chain:
        chain.insert(0, base)
    return chain


def _budget_note(totals: dict[str, int | None]) -> list[str]:
    known = {k: v for k, v in totals.items() if v is not None}
    if BASELINE not in known:
        return []
    ref = known[BASELINE]
    unequal = [f"{SET_LABELS.get(k, k)} {v}" for k, v in known.items() if v != ref]
    if not unequal:
        return [f"Equal step budgets: every checkpoint trained {ref} optimizer steps in all."]
    text = (
        f"**Unequal step budgets: RS-SFT trained {ref} optimizer steps in all, but "
        f"{', '.join(unequal)}; their differences from RS-SFT mix the data with the "
        "training length.**"
    )
    return [text]


def _num(value: int | None) -> str:
    return "?" if value is None else str(value)
