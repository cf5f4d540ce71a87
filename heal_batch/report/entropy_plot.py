"""Pictures people check by eye: one trajectory's entropy with its GEAR breakpoint.

Input: a trajectory record (generate output), optionally its steps and breakpoint (from
``heal_batch.method.trajectory.breakpoint_of``). Output: a PNG with per-token entropy (grey),
per-step mean entropy (blue segments), step boundaries (dotted), the breakpoint search window
(shaded) and the breakpoint (red line, labelled with strategy, reason and surge).

    from heal_batch.method.trajectory import breakpoint_of
    steps, bp = breakpoint_of(record, GearConfig())
    plot_entropy(record, bp, steps, "runs/demo/plots/arith-s0-0005#s2.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heal_batch.method.steps import DEFAULT_MIN_STEP_TOKENS, Step, step_means


def plot_entropy(
    record: dict[str, Any],
    breakpoint: Any = None,
    steps: Sequence[Step] | None = None,
    out_png: str | Path = "entropy.png",
    search_fraction: float | None = 1 / 3,
) -> Path:
    """Draw ``record``'s token and step entropy; mark ``breakpoint`` (a gear.Breakpoint, a candidate
    record's breakpoint dict, or None). ``steps`` default to blank-line steps of 8+ tokens."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on cluster nodes
    import matplotlib.pyplot as plt

    from heal_batch.method.trajectory import steps_of, stored_entropies

    ents = stored_entropies(record)
    if steps is None:
        steps = steps_of(record["completion"], record["offsets"], DEFAULT_MIN_STEP_TOKENS)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(range(len(ents)), ents, color="0.6", lw=0.8, label="token entropy")
    for step, mean in zip(steps, step_means(ents, steps) if steps else [], strict=True):
        ax.hlines(mean, step.token_start, step.token_end - 1, color="tab:blue", lw=2.2)
        if step.index:
            ax.axvline(step.token_start - 0.5, color="0.3", ls=":", lw=0.8)
    if search_fraction and ents:
        ax.axvspan(
            -0.5,
            search_fraction * len(ents) - 0.5,
            color="tab:orange",
            alpha=0.08,
            label=f"search window (first {search_fraction:.0%})",
        )
    if breakpoint is not None:
        _mark(ax, breakpoint)
    ax.set_xlabel("token")
    ax.set_ylabel("entropy (nats)")
    verdict = "correct" if record.get("correct") else f"wrong ({record.get('extracted_answer')})"
    ax.set_title(
        f"{record['id']}: {len(steps)} steps, {verdict}, {record.get('entropy_method', '')}",
        fontsize=10,
    )
    ax.plot([], [], color="tab:blue", lw=2.2, label="step mean")
    ax.legend(loc="upper right", fontsize=8)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _mark(ax: Any, bp: Any) -> None:
    get = bp.get if isinstance(bp, dict) else lambda key: getattr(bp, key)
    surge = get("surge")
    label = f"breakpoint: step {get('step_index')} ({get('strategy')}, {get('reason')}"
    label += f", surge {surge:.2f})" if surge is not None else ")"
    ax.axvline(get("token_index") - 0.5, color="tab:red", lw=1.6, label=label)
