"""The report's figures as PNG bytes (matplotlib, no pyplot state, no display needed).

Every function takes plain numbers and returns the PNG file's bytes, e.g.::

    png = loss_curves({"heal-1": [(1, 2.3), (2, 1.9)]})
    Path("loss.png").write_bytes(png)

Colours are fixed per bucket / kind / checkpoint so figures of different runs compare at a glance.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

BUCKET_COLORS = {"easy": "#4c9f70", "hard": "#e0a030", "corner": "#c8553d"}
KIND_COLORS = {
    "natural": "#4c78a8",
    "answer_guided": "#e0a030",
    "repair": "#c8553d",
    "reference": "#8c8c8c",
}
DPI = 110


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _integer_axis(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pass_rate_histogram(bars: Mapping[float, tuple[int, str]], k_label: str) -> bytes:
    """Problems per teacher pass rate; ``bars`` maps pass rate -> (problems, PACE bucket)."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    rates = sorted(bars)
    width = 0.8 * min((b - a for a, b in itertools.pairwise(rates)), default=0.1)
    for rate in rates:
        count, bucket = bars[rate]
        ax.bar(rate, count, width=width, color=BUCKET_COLORS.get(bucket, "#888"), label=bucket)
        ax.annotate(str(count), (rate, count), ha="center", va="bottom", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), title="PACE bucket", fontsize=8)
    ax.set_xlabel(f"teacher pass rate ({k_label})")
    ax.set_ylabel("problems")
    if len(rates) <= 12:
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
    _integer_axis(ax.yaxis)
    ax.set_xlim(-0.08, 1.08)
    return _png(fig)


def pure_ratio_histogram(ratios: Mapping[str, Sequence[float]]) -> bytes:
    """log10 of the PURE ratio R per record kind (reference = naturally correct trajectories)."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    logs = {k: [math.log10(r) for r in v if r > 0] for k, v in ratios.items()}
    values = [x for v in logs.values() for x in v]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    bins = [lo + (hi - lo + 1e-9) * i / 30 for i in range(31)]
    for kind, vals in sorted(logs.items()):
        ax.hist(
            vals,
            bins=bins,
            alpha=0.55,
            label=f"{kind} ({len(vals)})",
            color=KIND_COLORS.get(kind),
            density=True,
        )
    ax.set_xlabel("log10 PURE ratio R = max step PPL / (exp(answer NLL) + eps)  (high: shortcut)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _png(fig)


def entropy_curves(examples: Sequence) -> bytes:
    """One panel per example: token entropy of the source trajectory, breakpoint marked."""
    fig = _figure(8, 2.0 * len(examples) + 0.4)
    axes = fig.subplots(len(examples), 1, squeeze=False)[:, 0]
    for ax, ex in zip(axes, examples, strict=True):
        ax.plot(range(len(ex.entropies)), ex.entropies, lw=0.8, color="#4c78a8")
        if ex.token_index is not None:
            ax.axvline(
                ex.token_index,
                color="#c8553d",
                lw=1.5,
                ls="--",
                label=f"breakpoint ({ex.strategy}) at token {ex.token_index}",
            )
            ax.axvspan(
                ex.token_index,
                max(len(ex.entropies) - 1, ex.token_index),
                color="#c8553d",
                alpha=0.08,
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(f"{ex.problem_id}  (repair {ex.candidate_id})", fontsize=8, loc="left")
        ax.set_ylabel("entropy (nats)", fontsize=8)
    axes[-1].set_xlabel("token of the teacher's failed trajectory")
    return _png(fig)


def trajectory_entropy(example, gear: Mapping[str, Any]) -> bytes:
    """One repaired trajectory: heal_batch.report.entropy_plot.plot_entropy's picture (token and
    step entropy, GEAR search window, breakpoint) when the trajectory has token offsets, else a
    plain curve.
    ``gear``: the run's repair.gear settings (search_fraction, step_delimiter, min_step_tokens;
    missing keys take GearConfig's defaults), so the steps drawn are the steps GEAR saw."""
    record = example.trajectory
    if record.get("offsets") and record.get("completion") is not None and record.get("id"):
        import tempfile
        from pathlib import Path

        from heal_batch.method.gear import GearConfig
        from heal_batch.method.trajectory import gear_steps
        from heal_batch.report.entropy_plot import plot_entropy

        keys = ("search_fraction", "step_delimiter", "min_step_tokens")
        cfg = GearConfig(**{k: gear[k] for k in keys if k in gear})
        steps = gear_steps(record, cfg)
        with tempfile.TemporaryDirectory() as tmp:
            out = plot_entropy(
                record, example.breakpoint, steps, Path(tmp) / "e.png", cfg.search_fraction
            )
            return out.read_bytes()
    return entropy_curves([example])


def curriculum_bars(sets: Mapping[str, Mapping[str, int]], order: Sequence[str]) -> bytes:
    """Stacked bars: training examples per set (in ``order``), split by kind."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    kinds = sorted({k for c in sets.values() for k in c}, key=lambda k: (k not in KIND_COLORS, k))
    bottom = [0] * len(order)
    for kind in kinds:
        heights = [sets[s].get(kind, 0) for s in order]
        ax.bar(order, heights, bottom=bottom, label=kind, color=KIND_COLORS.get(kind))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("training examples")
    _integer_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return _png(fig)


def loss_curves(curves: Mapping[str, Sequence[tuple[int, float]]]) -> bytes:
    """Training loss against optimizer step, one line per checkpoint."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    for label, points in curves.items():
        steps, losses = zip(*points, strict=True)
        ax.plot(steps, losses, marker="." if len(points) < 40 else None, lw=1.2, label=label)
    ax.set_xlabel("optimizer step")
    _integer_axis(ax.xaxis)
    ax.set_ylabel("loss (assistant tokens)")
    ax.legend(fontsize=8)
    return _png(fig)


def eval_bars(
    table: Mapping[str, Mapping[str, tuple[float, float | None]]],
    benchmarks: Sequence[str],
    metric: str,
) -> bytes:
    """Grouped bars: ``table[checkpoint][benchmark] = (value, stderr)``, error bars = stderr."""
    fig = _figure(8, 3.4)
    ax = fig.add_subplot()
    rows = list(table)
    width = 0.8 / max(len(rows), 1)
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(benchmarks))]
        cells = [table[row].get(b, (math.nan, None)) for b in benchmarks]
        errors = [c[1] or 0.0 for c in cells]
        ax.bar(xs, [c[0] for c in cells], width=width, yerr=errors, capsize=2, label=row)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    # above the axes, so bars near 1.0 stay visible
    ax.legend(
        fontsize=8,
        ncols=min(len(rows), 6),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    return _png(fig)
