"""The report's first section: what HEAL added to each training set, and whether it added anything.

Input: :class:`RunData` (curriculum sets by kind, their id digests and counters; score's example
repairs). Output: report blocks, in this order:

- per set, its natural / answer-guided / repaired example counts (with the oracle's derived
  count where the curriculum task recorded one);
- a bold warning for each HEAL set that holds exactly the examples of the set before it (heal-2 =
  heal-1: no answer-guided sample; heal-3 = heal-2: no repair) and for heal-3 = rs (HEAL's data
  is the rejection-sampling baseline's), compared by the ids of the examples' sources;
- on built-in problems, PURE's precision and recall against the oracle (``method.oracle``), and
  per drop rule how many derived repairs it dropped;
- a few repairs in a training set and in none, with the text after the cut.

    blocks = heal_added_blocks(collect(Path("runs/demo")))
"""

from __future__ import annotations

from heal_batch.method.oracle import LABELS, precision_recall
from heal_batch.report.collect import RunData
from heal_batch.report.labels import SET_LABELS, ordered
from heal_batch.report.render import Table

KINDS = (("natural", "natural"), ("answer_guided", "answer-guided"), ("repair", "repaired"))
SAME_SET_WARNINGS = (
    ("heal-2", "heal-1", "no answer-guided sample made it into stage II, so it repeats stage I"),
    ("heal-3", "heal-2", "no GEAR repair made it into stage III, so it repeats stage II"),
    (
        "heal-3",
        "rs",
        (
            "HEAL's final set is the rejection-sampling baseline's, so HEAL and "
            "RS-SFT differ in their training schedule only, not in their data"
        ),
    ),
)
HEAL_SET = "heal-3"  # the set whose curriculum task holds the oracle counters


def heal_added_blocks(data: RunData) -> list:
    if data.curriculum is None:
        if "curriculum" in data.errors:
            return [f"Could not read curriculum data: {data.errors['curriculum']}"]
        return ["Not run yet: no training sets (curriculum)."]
    blocks: list = [_warning(data, *w) for w in SAME_SET_WARNINGS if _same(data, *w[:2])]
    rows, derived = [], False
    for name in ordered(data.curriculum):
        kinds, counters = data.curriculum[name], (data.set_counters or {}).get(name, {})
        counts = [(kinds.get(k, 0), counters.get(f"kept_{k}_derived")) for k, _ in KINDS]
        derived = derived or any(d is not None for _, d in counts)
        cells = [_count(*c) for c in counts]
        rows.append([SET_LABELS.get(name, name), *cells, sum(kinds.values())])
    oracle = '; "derived": the oracle\'s count on built-in problems' if derived else ""
    intro = (
        "Training examples per set, by where they came from (natural: correct teacher "
        f"samples; answer-guided: PACE stage II; repaired: GEAR repairs kept by PURE{oracle}):"
    )
    blocks += [intro, Table(["set", *(label for _, label in KINDS), "total"], rows)]
    blocks += _oracle_blocks((data.set_counters or {}).get(HEAL_SET, {}))
    blocks += _example_blocks(data)
    return blocks


def _same(data: RunData, a: str, b: str) -> bool:
    digests = data.set_digests or {}
    return a in digests and b in digests and digests[a] == digests[b]


def _warning(data: RunData, a: str, b: str, why: str) -> str:
    n = (data.set_digests or {})[a][0]
    text = f"**Warning: {a} equals {b} (the same {n} examples): {why}."
    drops = _pure_drops((data.set_counters or {}).get(a, {}))
    if a == HEAL_SET and b != "rs" and drops:
        text += f" PURE's drops in {a}: {drops}."
    return text + "**"


def _pure_drops(counters: dict[str, int]) -> str:
    """``rule n, ...`` of the oracle-counted drops, else of every drop but not_in_set."""
    rules = {
        k.removeprefix("oracle_rule_"): v
        for k, v in counters.items()
        if k.startswith("oracle_rule_") and not k.endswith("_derived")
    }
    if not rules:
        rules = {
            k.removeprefix("dropped_"): v
            for k, v in counters.items()
            if k.startswith("dropped_") and k != "dropped_not_in_set"
        }
    return ", ".join(f"{k} {v}" for k, v in sorted(rules.items()) if v)


def _oracle_blocks(counters: dict[str, int]) -> list:
    """PURE against the oracle, from the heal-3 task's counters (nothing without them)."""
    total = counters.get("oracle_candidates", 0)
    if not total:
        return []
    precision, recall = precision_recall(counters)
    kept, hit = counters.get("oracle_kept", 0), counters.get("oracle_kept_derived", 0)
    labels = ", ".join(
        f"{label} {counters[f'oracle_{label}']}"
        for label in LABELS
        if counters.get(f"oracle_{label}")
    )
    text = (
        f"PURE against the oracle on built-in problems ({total} candidates: {labels}; a "
        "candidate is derived when its text after the cut holds correct arithmetic steps "
        f"whose last result is the answer): PURE kept {kept}, {hit} of them derived. "
        f"Precision {_share(precision)} (derived among kept), recall {_share(recall)} "
        "(kept among derived)."
    )
    rules = sorted(
        k.removeprefix("oracle_rule_")
        for k in counters
        if k.startswith("oracle_rule_") and not k.endswith("_derived")
    )
    rows = [
        [rule, counters[f"oracle_rule_{rule}"], counters.get(f"oracle_rule_{rule}_derived", 0)]
        for rule in rules
    ]
    rows.append(["(kept)", kept, hit])
    return [text, Table(["PURE rule", "candidates", "of them derived"], rows)]


def _example_blocks(data: RunData) -> list:
    examples = data.score.examples if data.score else []
    if not examples:
        return []
    states = {True: "in a set", False: "in no set", None: "curriculum not run"}
    rows = [
        [
            states[e.kept],
            e.candidate_id,
            e.oracle or "-",
            "-" if e.ratio is None else f"{e.ratio:.2f}",
            e.after_cut,
        ]
        for e in examples
    ]
    intro = (
        "GEAR repairs in a training set (kept by PURE) and in none (dropped by PURE, "
        "deduplication or a cap); oracle: built-in problems only; text after the cut:"
    )
    return [intro, Table(["fate", "candidate", "oracle", "PURE R", "text after the cut"], rows)]


def _count(n: int, derived: int | None) -> str | int:
    return n if derived is None else f"{n} ({derived} derived)"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
