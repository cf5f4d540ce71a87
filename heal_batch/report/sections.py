"""Turn :class:`RunData` into the report's sections (tables, figures, short texts), in a fixed
order.

Every section exists in every report: a section whose stage has not produced anything says
"Not run yet: ..." and one whose data could not be read says "Could not read ...: <error>".

    sections = build_sections(collect(Path("runs/demo")))   # [Section("Stages", [...]), ...]
"""

from __future__ import annotations

from collections import Counter

from heal_batch.report import plots
from heal_batch.report.added import heal_added_blocks
from heal_batch.report.collect import RunData
from heal_batch.report.common import pace_thresholds, problem_buckets, progress, unavailable
from heal_batch.report.evaltable import evaluation_blocks
from heal_batch.report.hours import hours_table
from heal_batch.report.labels import SECTION_TITLES, ordered, rank
from heal_batch.report.render import Figure, Section, Table
from heal_batch.report.repairs import corner_cases, entropy


def build_sections(data: RunData) -> list[Section]:
    builders = (
        heal_added_blocks,
        _stages,
        _counts,
        _pass_rates,
        corner_cases,
        entropy,
        _curriculum,
        _training,
        _evaluation,
    )
    return [
        Section(title, _guarded(builder, data))
        for title, builder in zip(SECTION_TITLES, builders, strict=True)
    ]


def _guarded(builder, data: RunData) -> list:
    try:
        return builder(data)
    except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
        return [f"Could not render this section: {type(exc).__name__}: {exc}"]


def _stages(data: RunData) -> list:
    if not data.stages:
        return [f"Not run yet: no stage runs in {data.workdir} (start one with `heal-batch run`)."]
    rows = [
        [
            r.name,
            r.run_key[:12],
            f"{r.done}/{r.tasks}",
            r.states.get("failed", 0),
            r.tasks - r.done - r.states.get("failed", 0),
            "yes" if r.sealed else "no",
            r.records,
            f"{r.seconds:.1f}",
        ]
        for r in data.stages.values()
    ]
    head = ["stage", "run", "done", "failed", "waiting", "sealed", "records", "task seconds"]
    return [
        Table(head, rows),
        "Compute per stage (task seconds × devices, from receipts):",
        hours_table(data),
    ]


def _counts(data: RunData) -> list:
    if not data.stages:
        return ["Not run yet: no stage has finished a task."]
    totals, drops, other = [], [], []
    for run in data.stages.values():
        c = run.counters
        dropped = sum(v for k, v in c.items() if k.startswith("dropped_"))
        totals.append([run.name, c.get("total", 0), c.get("kept", 0), dropped])
        for key, value in sorted(c.items(), key=lambda kv: -kv[1]):
            if key.startswith("dropped_"):
                share = f"{value / c['total']:.1%}" if c.get("total") else "-"
                drops.append([run.name, key.removeprefix("dropped_"), value, share])
            elif key not in ("total", "kept"):
                other.append([run.name, key, value])
    blocks = [Table(["stage", "total", "kept", "dropped"], totals)]
    blocks += (
        [Table(["stage", "drop reason", "count", "share of total"], drops)]
        if drops
        else ["No records were dropped."]
    )
    if other:
        blocks += ["Other counters:", Table(["stage", "counter", "value"], other)]
    if data.set_counters and len(data.set_counters) > 1:
        blocks += _per_set(data.set_counters)
    return blocks


def _per_set(set_counters: dict[str, dict[str, int]]) -> list:
    """curriculum tasks each judge every sample of the run: their counters side by side."""
    reasons = sorted({k for c in set_counters.values() for k in c if k.startswith("dropped_")})
    rows = [
        [name, c.get("kept", 0), *(c.get(r, 0) for r in reasons)]
        for name, c in ((n, set_counters[n]) for n in ordered(set_counters))
    ]
    head = ["set", "kept", *(r.removeprefix("dropped_") for r in reasons)]
    text = (
        "curriculum, per training set (each of its tasks classifies every sample of the run, "
        "so the stage totals above count each sample once per set):"
    )
    return [text, Table(head, rows)]


def _pass_rates(data: RunData) -> list:
    if data.problems is None:
        return unavailable(data, "generate", "no teacher trajectories (generate)")
    outcomes, buckets = data.problems.outcomes, problem_buckets(data)
    bars: dict[float, tuple[int, str]] = {}
    for pid, (correct, k) in outcomes.items():
        rate = round(correct / k, 4)
        bars[rate] = (bars.get(rate, (0, ""))[0] + 1, buckets[pid])
    ks = sorted({k for _, k in outcomes.values()})
    mean = sum(c / k for c, k in outcomes.values()) / max(len(outcomes), 1)
    counts = Counter(buckets.values())
    pace = pace_thresholds(data)
    text = (
        f"{len(outcomes)} problems, {data.problems.trajectories} teacher trajectories, "
        f"k = {', '.join(map(str, ks))}; mean pass rate {mean:.3f}. PACE buckets (easy: pass rate "
        f">= {pace.easy_min_pass_rate}; corner: at most {pace.corner_max_correct} correct; "
        f"else hard): easy {counts['easy']}, hard {counts['hard']}, corner {counts['corner']}."
    )
    png = plots.pass_rate_histogram(bars, "k = " + "/".join(map(str, ks)))
    fig = Figure("pass_rates", png, "Problems per teacher pass rate, coloured by PACE bucket.")
    return progress(data, "generate") + [text, fig]


def _curriculum(data: RunData) -> list:
    if data.curriculum is None:
        return unavailable(data, "curriculum", "no training sets (curriculum)")
    sets = ordered(data.curriculum)
    kinds = sorted({k for c in data.curriculum.values() for k in c})
    rows = [
        [s, *(data.curriculum[s].get(k, 0) for k in kinds), sum(data.curriculum[s].values())]
        for s in sets
    ]
    png = plots.curriculum_bars(data.curriculum, sets)
    return progress(data, "curriculum") + [
        Table(["set", *kinds, "total"], rows),
        Figure("curriculum", png, "Training examples per set and kind."),
    ]


def _training(data: RunData) -> list:
    if data.training is None:
        return unavailable(data, "training", "no checkpoints (train-1/2/3, train-baselines)")
    runs = sorted(data.training, key=lambda r: (rank(r.set), r.set, r.stage))
    rows = [
        [
            r.set,
            r.stage,
            r.steps if r.steps is not None else "?",
            f"{r.final_loss:.4f}" if isinstance(r.final_loss, (int, float)) else "?",
            r.path or "?",
        ]
        for r in runs
    ]
    blocks = progress(data, "train-1", "train-2", "train-3", "train-baselines")
    blocks.append(Table(["set", "stage", "steps", "final loss", "checkpoint"], rows))
    curves = {r.set: r.log for r in runs if r.log}
    if curves:
        blocks.append(
            Figure("loss", plots.loss_curves(curves), "Training loss per optimizer step.")
        )
    else:
        blocks.append("No train_log.jsonl found next to the checkpoints.")
    return blocks


def _evaluation(data: RunData) -> list:
    if data.evaluation is None:
        return unavailable(data, "evaluation", "no lm-eval results (evaluate)")
    return progress(data, "evaluate") + evaluation_blocks(data.evaluation, data.training)
