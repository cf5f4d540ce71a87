"""The evaluation section: checkpoints x benchmarks tables (value ± stderr) and the settings used.

Input: slim evaluate result records (``checkpoint``, ``benchmark``, ``avg_at_n``,
``avg_at_n_stderr``, ``greedy_acc``, ...). Output: report blocks. Rows are ordered base, RS-SFT,
flat, HEAL stage I/II/III, then any other checkpoint; columns follow heal_batch.evaluation.harness's
benchmark order. stderr is lm-eval's standard error of the mean over problems (avg@n: of the
per-problem mean over the n samples). Where the records carry them (``avg_at_n_ci``, ``pass_at_k``,
``pass_at_k_ci``: :mod:`heal_batch.evaluation.metrics`), avg@n cells add the 95 % percentile-
bootstrap interval over problems, and a pass@k table shows pass@1 and pass@n per benchmark (n may
differ per benchmark) with its interval; the settings list the seeds and the interval method.
``compare`` adds each checkpoint minus RS-SFT on the same problems (paired) and the optimizer
steps and examples behind each row.

    blocks = evaluation_blocks([{"checkpoint": "base", "benchmark": "gsm8k", "avg_at_n": 0.3, ...}])
"""

from __future__ import annotations

import json
from typing import Any

from heal_batch.evaluation.harness import BENCHMARKS
from heal_batch.report import plots
from heal_batch.report.compare import budget_blocks, paired_blocks
from heal_batch.report.labels import SET_LABELS, ordered
from heal_batch.report.records import TrainingRun
from heal_batch.report.render import Figure, Table

METRICS = (
    ("avg_at_n", "avg@n: pass@1 averaged over n samples"),
    ("greedy_acc", "greedy accuracy"),
    ("pass_at_n", "pass@n: any of the n samples correct"),
    (
        "greedy_flex_acc",
        "greedy accuracy, lenient: the last number counts when there is no \\boxed{}",
    ),
)
CHART_METRICS = (("avg_at_n", "avg@n"), ("greedy_acc", "greedy accuracy"))
SETTINGS = ("n_samples", "temperature", "top_p", "max_gen_toks", "limit", "backend")
PASS_AT_K_TITLE = (
    "pass@k, the unbiased estimator of Chen et al. 2021, for k = 1 and k = n "
    "[95 % percentile-bootstrap interval over problems]:"
)


def evaluation_blocks(
    records: list[dict[str, Any]], training: list[TrainingRun] | None = None
) -> list:
    """The tables, then each checkpoint vs RS-SFT on the same problems and what each row
    trained on (``compare``: from ``training``, the checkpoints' runs), settings, chart."""
    by_cell = {(r["checkpoint"], r["benchmark"]): r for r in records}
    rows = ordered({c for c, _ in by_cell})
    benchmarks = [b for b in BENCHMARKS if any(bb == b for _, bb in by_cell)]
    benchmarks += sorted({b for _, b in by_cell} - set(benchmarks))
    blocks: list = []
    for metric, title in METRICS:
        cells = {
            (c, b): (r.get(metric), r.get(f"{metric}_stderr")) for (c, b), r in by_cell.items()
        }
        if all(v is None for v, _ in cells.values()):
            continue  # that pass was switched off (greedy: false or n_samples: 0)
        table = [
            [
                SET_LABELS.get(c, c),
                *(
                    _cell(cells.get((c, b)), by_cell.get((c, b), {}).get(f"{metric}_ci"))
                    for b in benchmarks
                ),
            ]
            for c in rows
        ]
        ci = any(r.get(f"{metric}_ci") for r in records)
        note = " [95 % bootstrap interval over problems]" if ci else ""
        blocks += [f"{title} (± standard error{note}):", Table(["checkpoint", *benchmarks], table)]
    blocks += _pass_at_k(by_cell, rows, benchmarks)
    blocks += paired_blocks(records) + budget_blocks(training)
    blocks += _settings(records, benchmarks)
    # the chart shows avg@n, or greedy accuracy when no sampled pass ran (the demo)
    metric, label = next(
        ((m, t) for m, t in CHART_METRICS if any(r.get(m) is not None for r in records)),
        (None, ""),
    )
    chart = (
        {
            SET_LABELS.get(c, c): {
                b: (by_cell[c, b][metric], by_cell[c, b].get(f"{metric}_stderr"))
                for b in benchmarks
                if (c, b) in by_cell and by_cell[c, b].get(metric) is not None
            }
            for c in rows
        }
        if metric
        else {}
    )
    if any(chart.values()):
        png = plots.eval_bars(chart, benchmarks, label)
        blocks.append(
            Figure("evaluation", png, f"{label} per benchmark; error bars: ± standard error.")
        )
    return blocks


def _cell(value: tuple[float | None, float | None] | None, ci: list | None = None) -> str:
    if value is None or value[0] is None:
        return "-"
    mean, stderr = value
    text = f"{mean:.3f} ± {stderr:.3f}" if stderr is not None else f"{mean:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _pass_at_k(by_cell: dict, rows: list[str], benchmarks: list[str]) -> list:
    """pass@1 and pass@n (the largest k recorded) per benchmark, each with its interval."""
    columns = []
    for b in benchmarks:
        ks = {int(k) for (_, bb), r in by_cell.items() if bb == b for k in r.get("pass_at_k") or {}}
        columns += [(b, k) for k in sorted({min(ks), max(ks)})] if ks else []
    if not columns:
        return []

    def cell(c: str, b: str, k: int) -> str:
        r = by_cell.get((c, b)) or {}
        value = (r.get("pass_at_k") or {}).get(str(k))
        if value is None:
            return "-"
        ci = (r.get("pass_at_k_ci") or {}).get(str(k))
        return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    table = [[SET_LABELS.get(c, c), *(cell(c, b, k) for b, k in columns)] for c in rows]
    return [PASS_AT_K_TITLE, Table(["checkpoint", *(f"{b} pass@{k}" for b, k in columns)], table)]


def _settings(records: list[dict[str, Any]], benchmarks: list[str]) -> list[str]:
    """What the numbers depend on: sampling settings, problems per benchmark, library versions."""
    combos = sorted({tuple(str(r.get(k)) for k in SETTINGS) for r in records})
    lines = [
        "Settings: "
        + "; ".join(
            ", ".join(f"{k}={v}" for k, v in zip(SETTINGS, combo, strict=True)) for combo in combos
        )
    ]
    problems = {
        b: sorted({r.get("num_problems") for r in records if r["benchmark"] == b}, key=str)
        for b in benchmarks
    }
    lines.append(
        "Problems per benchmark: "
        + ", ".join(f"{b} {'/'.join(map(str, n))}" for b, n in problems.items())
    )
    versions = sorted(
        {
            ", ".join(f"{k} {v}" for k, v in sorted((r.get("versions") or {}).items()))
            for r in records
        }
    )
    lines.append("Library versions: " + " | ".join(versions))
    seeds = sorted({json.dumps(r["seeds"], sort_keys=True) for r in records if r.get("seeds")})
    if seeds:
        lines.append("Seeds: " + " | ".join(seeds))
    intervals = sorted(
        {json.dumps(r["interval"], sort_keys=True) for r in records if r.get("interval")}
    )
    if intervals:
        lines.append("Intervals: " + " | ".join(intervals))
    return lines
