"""What repair asks the teacher for, and what it keeps: pure functions, no model.

Inputs: one problem's trajectory records (generate output) and the repair config. Outputs:
``Job`` s (a prompt to continue, how many samples, with lineage), then for each sample either a
candidate record or a drop reason, and one ``repair_summary`` per problem.

- corner case -> up to ``paths_per_problem`` failed trajectories; each is cut at its GEAR
  breakpoint; the teacher continues from ``prompt + prefix + hint``.
- hard (``guided_buckets``; corner too with ``guided_for_corner``) -> ``guided_per_problem``
  answer-guided samples, the answer in the user prompt (``guided_placement: prompt``) or as a
  hint at the start of the answer (``start``).
- easy, for ``reference_problems`` of them per shard (``choose_reference``) -> the same
  answer-guided samples, kind ``guided_reference``: PURE's guided reference, not a candidate.
A sample survives if the hint-free text is graded correct, the continuation states an answer of its
own, and the continuation does not mention the hint (``gear.leak_phrases``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from heal_batch.method.hints import (
    answer_guided_prompt,
    build_hint,
    find_leak,
    hint_prefill,
    strip_hint_with_cut,
)
from heal_batch.method.pace import PaceConfig, bucket
from heal_batch.method.seeds import stable_seed
from heal_batch.records import GUIDED_REFERENCE

Render = Callable[[str, str | None], str]  # (user text, assistant prefix) -> chat prompt


@dataclass(frozen=True)
class Job:
    """One prompt sent to the teacher with ``n`` samples, seeds ``seed .. seed + n - 1``.

    ``placement``: ``inline`` (hint after a GEAR prefix), ``start`` (hint opens the answer) or
    ``prompt`` (answer in the user turn; ``hint`` is that user text).
    """

    kind: str
    problem: dict[str, Any]
    prompt: str
    n: int
    seed: int
    hint: str
    placement: str
    prefix: str = ""
    source: dict[str, Any] | None = None
    breakpoint: dict[str, Any] | None = None


def group_by_problem(records: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Trajectories grouped per problem (first-seen order), each group by sample index."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["problem_id"], []).append(r)
    return [sorted(g, key=lambda r: r["sample_index"]) for g in groups.values()]


def problem_bucket(
    group: Sequence[dict[str, Any]], easy_min_pass_rate: float, corner_max_correct: int
) -> str:
    """easy / hard / corner from the teacher's k samples (``pace.bucket``)."""
    first = group[0]
    cfg = PaceConfig(easy_min_pass_rate=easy_min_pass_rate, corner_max_correct=corner_max_correct)
    return bucket(first["n_correct"], first["k"], cfg)


@dataclass(frozen=True)
class Work:
    """One problem for repair: its trajectories, its bucket and whether it is one of the easy
    problems whose answer-guided samples form PURE's guided reference."""

    group: Sequence[dict[str, Any]]
    bucket: str
    reference: bool = False


def choose_reference(
    groups: Sequence[Sequence[dict[str, Any]]], buckets: Sequence[str], n: int, seed: int
) -> set[str]:
    """Up to ``n`` easy problems' ids (the guided reference), chosen by a stable hash of their
    ids: not by shard order."""
    easy = [g[0]["problem_id"] for g, b in zip(groups, buckets, strict=True) if b == "easy"]
    return set(sorted(easy, key=lambda pid: stable_seed(seed, "reference", pid))[:n])


def failed_paths(group: Sequence[dict[str, Any]], p: int) -> list[dict[str, Any]]:
    """Up to ``p`` failed trajectories, lowest sample index first (deterministic)."""
    return [r for r in group if not r["correct"]][:p]


def repair_job(source: dict[str, Any], cut_char: int, breakpoint: dict[str, Any], cfg) -> Job:
    """Continue ``source`` from its first ``cut_char`` characters plus the hindsight hint."""
    prefix = source["completion"][:cut_char]
    hint = build_hint(source["reference_answer"], cfg.gear.hint_template)
    return Job(
        "repair",
        source,
        source["prompt"] + hint_prefill(prefix, hint),
        cfg.continuations_per_path,
        _seed(cfg.seed, "repair", source["id"]),
        hint,
        "inline",
        prefix,
        source,
        breakpoint,
    )


def guided_job(problem: dict[str, Any], render: Render, cfg, kind: str = "answer_guided") -> Job:
    """Answer-guided samples of one problem (``problem`` is any of its trajectories); ``kind``
    ``guided_reference`` for an easy problem's samples (PURE's guided reference)."""
    answer, text = problem["reference_answer"], problem["problem"]
    seed = _seed(cfg.seed, "guided", problem["problem_id"])
    n = cfg.samples_per_reference() if kind == GUIDED_REFERENCE else cfg.guided_per_problem
    if cfg.guided_placement == "prompt":
        user = answer_guided_prompt(text, answer, cfg.guided_template)
        return Job(
            kind,
            problem,
            render(user, None),
            n,
            seed,
            user,
            "prompt",
        )
    hint = build_hint(answer, cfg.gear.hint_template)
    return Job(
        kind,
        problem,
        render(text, hint_prefill("", hint)),
        n,
        seed,
        hint,
        "start",
    )


def stitch(job: Job, continuation: str) -> tuple[str, int]:
    """The hint-free training text and the char index where the continuation starts in it."""
    if job.placement == "prompt":
        return continuation, 0
    return strip_hint_with_cut(hint_prefill(job.prefix, job.hint) + continuation, job.hint)


def judge(job: Job, sample: Any, cfg) -> tuple[dict[str, Any] | None, str]:
    """(candidate fields, "kept") or (None, drop reason) for one teacher sample of ``job``.

    Reasons: ``prompt_too_long`` (prefix and hint left the teacher no room: soft-failed, not
    sent), the grade reason (wrong_answer, no_answer, unparseable), ``no_answer_in_continuation``
    (only the kept prefix states an answer) or ``leak`` (checked on correct samples only, so a
    summary's ``leaked`` counts correct-but-leaking samples).
    """
    from heal_batch.backends.base import prompt_overflow
    from heal_batch.method.grading import extract_answer, grade

    if prompt_overflow(sample):
        return None, "prompt_too_long"
    text, cut = stitch(job, sample.text)
    g = grade(text, job.problem["reference_answer"], cfg.answer_style)
    if not g.correct:
        return None, g.reason
    if extract_answer(sample.text, cfg.answer_style) is None:
        return None, "no_answer_in_continuation"
    if find_leak(sample.text, cfg.gear.leak_phrases) is not None:
        return None, "leak"
    return {
        "text": text,
        "cut_char": cut,
        "extracted_answer": g.extracted,
        "grade_reason": g.reason,
    }, "kept"


def candidate_record(
    job: Job, j: int, sample: Any, judged: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """One surviving candidate with full lineage.

    ``meta``: bucket, user_prompt, model, verifier, ..."""
    p = job.problem
    if job.kind == "repair":
        src = job.source or {}
        ident, source_id, source_index = (
            f"{p['problem_id']}#s{src['sample_index']}#c{j}",
            src["id"],
            src["sample_index"],
        )
    else:
        tag = "gr" if job.kind == GUIDED_REFERENCE else "ag"
        ident, source_id, source_index = f"{p['problem_id']}#{tag}{j}", None, None
    return {
        "kind": job.kind,
        "id": ident,
        "problem_id": p["problem_id"],
        "problem": p["problem"],
        "reference_answer": p["reference_answer"],
        "source": p.get("source"),
        "k": p["k"],
        "n_correct": p["n_correct"],
        "source_trajectory": source_id,
        "source_sample_index": source_index,
        "breakpoint": job.breakpoint,
        "hint": job.hint,
        "hint_placement": job.placement,
        "prefix": job.prefix,
        "continuation": sample.text,
        "seed": sample.seed,
        "finish_reason": sample.finish_reason,
        "n_continuation_tokens": len(sample.token_ids),
        "correct": True,
        "system_prompt": p.get("system_prompt"),
        **judged,
        **meta,
    }


def summary_record(
    group: Sequence[dict[str, Any]],
    bucket_name: str,
    tally: dict[str, int],
    dropped: dict[str, int],
    breakpoints: dict[str, int],
    entropy_methods: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The per-problem yield: attempted/correct/leaked/kept and why nothing survived;
    ``generated_tokens``: every token the teacher generated for the problem, kept or dropped;
    ``entropy_methods``: how many cut paths' entropies came from each method (``exact``,
    ``exact-rescored``, ``topk-20``...)."""
    p = group[0]
    attempted, kept, leaked = (
        tally.get("attempted", 0),
        tally.get("kept", 0),
        dropped.get("leak", 0),
    )
    correct = kept + leaked
    if kept:
        reason = "kept"
    elif tally.get("paths", 1) == 0:
        reason = "no_failed_trajectory"
    elif correct:
        reason = "all_leaked"
    else:
        reason = "no_correct_continuation"
    return {
        "kind": "repair_summary",
        "id": f"{p['problem_id']}#summary",
        "problem_id": p["problem_id"],
        "bucket": bucket_name,
        "k": p["k"],
        "n_correct": p["n_correct"],
        "attempted": attempted,
        "correct": correct,
        "leaked": leaked,
        "kept": kept,
        "reason": reason,
        "dropped": dict(sorted(dropped.items())),
        "breakpoints": dict(sorted(breakpoints.items())),
        "entropy_methods": dict(sorted((entropy_methods or {}).items())),
        "generated_tokens": tally.get("generated_tokens", 0),
    }


def _seed(base: int, kind: str, ident: str) -> int:
    # 31 bits: the first sample's seed; sample j uses seed + j (backends/base.py)
    return stable_seed(base, kind, ident) % 2**31
