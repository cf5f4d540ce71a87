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
from heal_batch.report.evaltable import evaluation_blocks
from heal_batch.report.hours import hours_table
from heal_batch.report.labels import SECTION_TITLES, ordered, rank
from heal_batch.report.render import Figure, Pre, Section, Table

ENTROPY_INTRO = (
    "Failed teacher trajectories that GEAR repaired: token entropy, the breakpoint where the "
    "repair replaced the rest, and the text around it (up to 3 problems; repairs kept by PURE "
    "first)."
)


def build_sections(data: RunData) -> list[Section]:
    builders = (
        heal_added_blocks,
        _stages,
        _counts,
        _pass_rates,
        _corner_cases,
        _entropy,
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


def _progress(data: RunData, *stages: str) -> list[str]:
    """A note for stages still running: the section covers finished tasks only."""
    notes = []
    for name in stages:
        run = data.stages.get(name)
        if run and run.done < run.tasks:
            notes.append(
                f"{name}: {run.done}/{run.tasks} tasks done; this section covers those only."
            )
    return notes


def _unavailable(data: RunData, section: str, what: str) -> list[str]:
    if section in data.errors:
        return [f"Could not read {section} data: {data.errors[section]}"]
    return [f"Not run yet: {what}."]


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


def _pace_thresholds(data: RunData):
    """PaceConfig of the curriculum run when it has one, else the defaults."""
    from heal_batch.method.pace import PaceConfig

    config = data.stages["curriculum"].config if "curriculum" in data.stages else {}
    found = _find_mapping(config, "easy_min_pass_rate")
    keys = ("easy_min_pass_rate", "corner_max_correct")
    return PaceConfig(**{k: found[k] for k in keys if k in found}) if found else PaceConfig()


def _find_mapping(value, key: str) -> dict | None:
    if isinstance(value, dict):
        if key in value:
            return value
        for child in value.values():
            if (found := _find_mapping(child, key)) is not None:
                return found
    return None


def _buckets(data: RunData) -> dict[str, str]:
    from heal_batch.method.pace import bucket

    pace = _pace_thresholds(data)
    return {pid: bucket(c, k, pace) for pid, (c, k) in data.problems.outcomes.items()}


def _pass_rates(data: RunData) -> list:
    if data.problems is None:
        return _unavailable(data, "generate", "no teacher trajectories (generate)")
    outcomes, buckets = data.problems.outcomes, _buckets(data)
    bars: dict[float, tuple[int, str]] = {}
    for pid, (correct, k) in outcomes.items():
        rate = round(correct / k, 4)
        bars[rate] = (bars.get(rate, (0, ""))[0] + 1, buckets[pid])
    ks = sorted({k for _, k in outcomes.values()})
    mean = sum(c / k for c, k in outcomes.values()) / max(len(outcomes), 1)
    counts = Counter(buckets.values())
    pace = _pace_thresholds(data)
    text = (
        f"{len(outcomes)} problems, {data.problems.trajectories} teacher trajectories, "
        f"k = {', '.join(map(str, ks))}; mean pass rate {mean:.3f}. PACE buckets (easy: pass rate "
        f">= {pace.easy_min_pass_rate}; corner: at most {pace.corner_max_correct} correct; "
        f"else hard): easy {counts['easy']}, hard {counts['hard']}, corner {counts['corner']}."
    )
    png = plots.pass_rate_histogram(bars, "k = " + "/".join(map(str, ks)))
    fig = Figure("pass_rates", png, "Problems per teacher pass rate, coloured by PACE bucket.")
    return _progress(data, "generate") + [text, fig]


def _corner_cases(data: RunData) -> list:
    if data.repair is None:
        return _unavailable(data, "repair", "no repairs or answer-guided samples (repair)")
    buckets = Counter(_buckets(data).values()) if data.problems else None
    reasons = {
        b: Counter(s["reason"] for s in data.repair.summaries if s["bucket"] == b)
        for b in ("corner", "hard")
    }
    ratios = data.score.ratios if data.score else None
    kept = data.kept_ids

    def row(label, corner, hard):
        return [label, "-" if corner is None else corner, "-" if hard is None else hard]

    rows = [
        row(
            "problems in bucket (teacher)",
            *((buckets["corner"], buckets["hard"]) if buckets else (None, None)),
        ),
        row(
            "problems attempted (repair)",
            sum(reasons["corner"].values()),
            sum(reasons["hard"].values()),
        ),
        *[
            row(f"  outcome: {r}", reasons["corner"][r], reasons["hard"][r])
            for r in sorted(set(reasons["corner"]) | set(reasons["hard"]))
        ],
        row(
            "candidates (correct, hint-free)",
            data.repair.candidates["repair"],
            data.repair.candidates["answer_guided"],
        ),
        row(
            "scored by PURE (score)",
            *(
                (len(ratios.get("repair", [])), len(ratios.get("answer_guided", [])))
                if ratios is not None
                else (None, None)
            ),
        ),
        row(
            "kept in training sets (curriculum)",
            *(
                (len(kept.get("repair", ())), len(kept.get("answer_guided", ())))
                if kept is not None
                else (None, None)
            ),
        ),
    ]
    blocks = _progress(data, "repair", "score", "curriculum")
    blocks += [
        "From teacher failure to training data (- : that stage has not run yet).",
        Table(["step", "corner: GEAR repairs", "hard: answer-guided"], rows),
    ]
    final = (data.set_counters or {}).get("heal-3")
    drops = {
        k.removeprefix("dropped_"): v for k, v in (final or {}).items() if k.startswith("dropped_")
    }
    if drops:
        fates = ", ".join(f"{k} {v}" for k, v in sorted(drops.items()))
        blocks.append(
            f"Fates of all samples of the run in set heal-3: kept {final.get('kept', 0)}, "
            f"dropped {fates} (PURE's rules: no_reasoning_after_cut, top_lambda, "
            "above_reference_q*, answer_not_derived_q*)."
        )
    if data.score and data.score.ratios:
        png = plots.pure_ratio_histogram(data.score.ratios)
        blocks.append(
            Figure(
                "pure_ratios",
                png,
                "PURE ratio per candidate kind; reference = "
                "naturally correct teacher trajectories (their q95 is the cut-off).",
            )
        )
    elif data.score is None:
        blocks.append("Not run yet: no PURE scores (score).")
    return blocks


def _entropy(data: RunData) -> list:
    if not data.examples:
        if data.repair is None or data.problems is None:
            return _unavailable(
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
    gear = _find_mapping(config, "search_fraction") or {}  # repair.gear as the run used it
    blocks: list = [ENTROPY_INTRO]
    states = {None: "curriculum not run", True: "kept by PURE", False: "not in a training set"}
    for i, ex in enumerate(data.examples):
        caption = f"{ex.candidate_id} ({ex.strategy}: {ex.reason}; {states[ex.kept]})"
        blocks.append(Figure(f"entropy_{i}", plots.trajectory_entropy(ex, gear), caption))
        blocks.append(
            Pre(f"...{ex.before}⟦breakpoint⟧{ex.after}...\nrepaired continuation: {ex.repaired}...")
        )
    return blocks


def _curriculum(data: RunData) -> list:
    if data.curriculum is None:
        return _unavailable(data, "curriculum", "no training sets (curriculum)")
    sets = ordered(data.curriculum)
    kinds = sorted({k for c in data.curriculum.values() for k in c})
    rows = [
        [s, *(data.curriculum[s].get(k, 0) for k in kinds), sum(data.curriculum[s].values())]
        for s in sets
    ]
    png = plots.curriculum_bars(data.curriculum, sets)
    return _progress(data, "curriculum") + [
        Table(["set", *kinds, "total"], rows),
        Figure("curriculum", png, "Training examples per set and kind."),
    ]


def _training(data: RunData) -> list:
    if data.training is None:
        return _unavailable(data, "training", "no checkpoints (train-1/2/3, train-baselines)")
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
    blocks = _progress(data, "train-1", "train-2", "train-3", "train-baselines")
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
        return _unavailable(data, "evaluation", "no lm-eval results (evaluate)")
    return _progress(data, "evaluate") + evaluation_blocks(data.evaluation, data.training)
