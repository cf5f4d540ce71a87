"""The evaluation section: checkpoints x benchmarks tables (value ± stderr) and the settings used.

Input: slim evaluate result records (``checkpoint``, ``benchmark``, ``avg_at_n``,
``avg_at_n_stderr``, ``greedy_acc``, ...). Output: report blocks. Rows are ordered base, RS-SFT,
flat, HEAL stage I/II/III, then any other checkpoint; columns follow heal_batch.evaluation.harness's
benchmark order. stderr is lm-eval's standard error of the mean over problems (avg@n: of the
per-problem mean over the n samples).

    blocks = evaluation_blocks([{"checkpoint": "base", "benchmark": "gsm8k", "avg_at_n": 0.3, ...}])
"""

from __future__ import annotations

from typing import Any

from heal_batch.evaluation.harness import BENCHMARKS
from heal_batch.report import plots
from heal_batch.report.render import Figure, Table
from heal_batch.report.labels import SET_LABELS, ordered

METRICS = (
    ("avg_at_n", "avg@n: pass@1 averaged over n samples"),
    ("greedy_acc", "greedy accuracy"),
    ("pass_at_n", "pass@n: any of the n samples correct"),
    ("greedy_flex_acc", "greedy accuracy, lenient: the last number counts when there is no \\boxed{}"),
)
CHART_METRICS = (("avg_at_n", "avg@n"), ("greedy_acc", "greedy accuracy"))
SETTINGS = ("n_samples", "temperature", "top_p", "max_gen_toks", "limit", "backend")


def evaluation_blocks(records: list[dict[str, Any]]) -> list:
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
            [SET_LABELS.get(c, c), *(_cell(cells.get((c, b))) for b in benchmarks)] for c in rows
        ]
        blocks += [f"{title} (± standard error):", Table(["checkpoint", *benchmarks], table)]
    blocks += _settings(records, benchmarks)
    # the chart shows avg@n, or greedy accuracy when no sampled pass ran (the demo)
    metric, label = next(
        ((m, t) for m, t in CHART_METRICS if any(r.get(m) is not None for r in records)),
        (None, ""),
    )
    chart = {
        SET_LABELS.get(c, c): {b: (by_cell[c, b][metric], by_cell[c, b].get(f"{metric}_stderr"))
                               for b in benchmarks if (c, b) in by_cell
                               and by_cell[c, b].get(metric) is not None}
        for c in rows
    } if metric else {}  # fmt: skip
    if any(chart.values()):
        png = plots.eval_bars(chart, benchmarks, label)
        blocks.append(
            Figure("evaluation", png, f"{label} per benchmark; error bars: ± standard error.")
        )
    return blocks


def _cell(value: tuple[float | None, float | None] | None) -> str:
    if value is None or value[0] is None:
        return "-"
    mean, stderr = value
    return f"{mean:.3f} ± {stderr:.3f}" if stderr is not None else f"{mean:.3f}"


def _settings(records: list[dict[str, Any]], benchmarks: list[str]) -> list[str]:
    """What the numbers depend on: sampling settings, problems per benchmark, library versions."""
    combos = sorted({tuple(str(r.get(k)) for k in SETTINGS) for r in records})
    lines = ["Settings: " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in zip(SETTINGS, combo)) for combo in combos)]  # fmt: skip
    problems = {b: sorted({r.get("num_problems") for r in records if r["benchmark"] == b}, key=str)
                for b in benchmarks}  # fmt: skip
    lines.append("Problems per benchmark: " + ", ".join(
        f"{b} {'/'.join(map(str, n))}" for b, n in problems.items()))  # fmt: skip
    versions = sorted({", ".join(f"{k} {v}" for k, v in sorted((r.get("versions") or {}).items()))
                       for r in records})  # fmt: skip
    lines.append("Library versions: " + " | ".join(versions))
    return lines
