"""A fake run folder for report tests: canned records for every stage, written through the launcher.

Each stage of the DAG (generate ... evaluate) is replaced by a :class:`Canned` stage that writes the
records given in its config, so manifests, receipts and shards are the real thing while the numbers
are known. Records follow /work/notes/records.md.

    cfg = build_config(tmp_path)          # then, with canned stages registered:
    launch(cfg, make_executor("debug"), stage_names(), echo=lambda *_: None)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from heal_batch.config import PipelineConfig
from heal_batch.pipeline.contract import Counters, Task, TaskIO
from heal_batch.records import encode_floats

K = 5
CORRECT = {
    "p0": 5,
    "p1": 3,
    "p2": 2,
    "p3": 1,
    "p4": 0,
    "p5": 1,
}  # easy easy hard corner corner corner
STAGE_NAMES = (
    "generate",
    "repair",
    "score",
    "curriculum",
    "train-1",
    "train-2",
    "train-3",
    "train-baselines",
    "evaluate",
)
EVAL = {"base": 0.1, "rs": 0.2, "flat": 0.25, "heal-1": 0.3, "heal-2": 0.4, "heal-3": 0.5}
CUT = len("Step 1: add.\n\n")
# the text after the cut of each repair and its oracle label (score writes it: method.oracle)
AFTER_CUT = {
    "p3#s1#c0": ("3 + 4 = 7. \\boxed{7}", "derived"),
    "p3#s1#c1": ("The answer is \\boxed{7}.", "shortcut"),
    "p5#s1#c0": ("5 + 2 = 7, so \\boxed{7}", "derived"),
    "p5#s1#c1": ("2 + 5 = 7 gives \\boxed{7}", "derived"),
}
# PURE against the oracle, as curriculum's heal-3 task counts it: p5#s1#c1 dropped (top_lambda)
ORACLE_COUNTERS = {
    "oracle_candidates": 4,
    "oracle_derived": 3,
    "oracle_shortcut": 1,
    "oracle_kept": 3,
    "oracle_kept_derived": 2,
    "oracle_rule_top_lambda": 1,
    "oracle_rule_top_lambda_derived": 1,
    "kept_repair_derived": 2,  # the set's own count: p3#s1#c0 and p5#s1#c0 are in heal-3
}


@dataclass(frozen=True)
class CannedConfig:
    records: dict[str, list[list[dict[str, Any]]]] = field(
        default_factory=dict
    )  # stage -> per task
    counters: dict[str, list[dict[str, int]]] = field(default_factory=dict)


class Canned:
    name: ClassVar[str] = "canned"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str] = "canned"
    shared: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[str] = "array"

    def __init__(self, config: CannedConfig):
        self.config = config

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream):
        return [Task(self.name, i) for i in range(len(self.config.records.get(self.name, [])))]

    def run(self, task: Task, io: TaskIO) -> Counters:
        counters = Counters()
        for record in self.config.records[self.name][task.index]:
            io.write(record)
            counters.keep()
        extra = self.config.counters.get(self.name, [])
        for key, n in (extra[task.index] if task.index < len(extra) else {}).items():
            if key.startswith("dropped_"):  # counts into total, as real stages do
                counters.drop(key.removeprefix("dropped_"), n)
            else:
                counters[key] += n
        return counters


CANNED = {name: type(f"Canned_{name}", (Canned,), {"name": name}) for name in STAGE_NAMES}


@dataclass
class ReportPipeline(PipelineConfig):
    canned: CannedConfig = field(default_factory=CannedConfig)


def trajectory(pid: str, s: int) -> dict[str, Any]:
    correct = s < CORRECT[pid]
    entropies = [0.2 + 0.05 * (i % 5) for i in range(60)]
    entropies[14] = 3.5  # the surge GEAR cuts at: the first token of step 2
    completion = (
        "Step 1: add.\n\nStep 2: carry the one.\n\n"
        f"So the answer is \\boxed{{{7 if correct else 8}}}."
    )
    return {
        "id": f"{pid}#s{s}",
        "problem_id": pid,
        "problem": f"What is {pid}?",
        "reference_answer": "7",
        "sample_index": s,
        "completion": completion,
        "entropies": encode_floats(entropies),
        "correct": correct,
        "k": K,
        "n_correct": CORRECT[pid],
        "pass_rate": CORRECT[pid] / K,
        # one token per character; p5's trajectories lack offsets (the report's fallback plot)
        **({"offsets": list(range(60)), "entropy_method": "exact"} if pid != "p5" else {}),
    }


def candidates() -> tuple[list[dict], list[dict]]:
    """(candidates, summaries): GEAR repairs for p3, p5 (p4 fails), answer-guided samples for p2."""
    cands, summaries = [], []
    for pid in ("p3", "p5"):
        for j in range(2):
            bp = {
                "step_index": 1,
                "token_index": 14,
                "char_index": 14,
                "strategy": "surge",
                "reason": "entropy surge",
                "surge": 3.2,
            }
            cands.append(
                {
                    "kind": "repair",
                    "id": f"{pid}#s1#c{j}",
                    "problem_id": pid,
                    "bucket": "corner",
                    "source_trajectory": f"{pid}#s1",
                    "breakpoint": bp,
                    "continuation": "Carry: 7.",
                    "text": "Step 1: add.\n\n" + AFTER_CUT[f"{pid}#s1#c{j}"][0],
                    "cut_char": CUT,
                    "correct": True,
                    "source": "builtin/arith-L1",
                }
            )
        summaries.append(
            {
                "kind": "repair_summary",
                "id": f"{pid}#summary",
                "problem_id": pid,
                "bucket": "corner",
                "attempted": 3,
                "correct": 2,
                "leaked": 0,
                "kept": 2,
                "reason": "kept",
            }
        )
    summaries.append(
        {
            "kind": "repair_summary",
            "id": "p4#summary",
            "problem_id": "p4",
            "bucket": "corner",
            "attempted": 3,
            "correct": 0,
            "leaked": 0,
            "kept": 0,
            "reason": "no_correct_continuation",
        }
    )
    cands += [
        {
            "kind": "answer_guided",
            "id": f"p2#ag{j}",
            "problem_id": "p2",
            "bucket": "hard",
            "source_trajectory": None,
            "breakpoint": None,
            "text": "...",
            "correct": True,
        }
        for j in range(3)
    ]
    summaries.append(
        {
            "kind": "repair_summary",
            "id": "p2#summary",
            "problem_id": "p2",
            "bucket": "hard",
            "attempted": 3,
            "correct": 3,
            "leaked": 0,
            "kept": 3,
            "reason": "kept",
        }
    )
    return cands, summaries


def scored(cands: list[dict]) -> list[dict]:
    out = [
        c
        | {"pure": {"ratio": 1.5 + i, "unscored_reason": None}}
        | ({"oracle": AFTER_CUT[c["id"]][1]} if c["id"] in AFTER_CUT else {})
        for i, c in enumerate(cands)
    ]
    out += [
        {
            "kind": "reference",
            "id": f"p0#s{s}",
            "problem_id": "p0",
            "pure": {"ratio": 1.0 + 0.1 * s, "unscored_reason": None},
        }
        for s in range(K)
    ]
    return out


def curriculum(cands: list[dict], kept_repairs: int = 3) -> list[list[dict]]:
    """One task per set (heal-1, heal-2, heal-3, rs, flat), as the real stage writes them;
    ``kept_repairs``: repairs PURE kept (0: heal-3 equals heal-2, as in the demo)."""
    natural = [f"{p}#s{s}" for p, c in CORRECT.items() for s in range(c)]
    guided = [c["id"] for c in cands if c["kind"] == "answer_guided"]
    repairs = [c["id"] for c in cands if c["kind"] == "repair"][:kept_repairs]
    by_set = {
        "heal-1": [("natural", natural)],
        "heal-2": [("natural", natural), ("answer_guided", guided)],
        "heal-3": [("natural", natural), ("answer_guided", guided), ("repair", repairs)],
        "rs": [("natural", natural)],
        "flat": [("natural", natural), ("answer_guided", guided), ("repair", repairs)],
    }
    return [
        [
            {
                "id": f"{name}/{sid}",
                "set": name,
                "kind": kind,
                "source_id": sid,
                "problem_id": sid[:2],
            }
            for kind, ids in parts
            for sid in ids
        ]
        for name, parts in by_set.items()
    ]


def checkpoint(tmp: Path, name: str, examples: int = 12) -> dict:
    """5 steps each; heal-2 and heal-3 continue the previous stage (15 steps in all for heal-3)."""
    log = tmp / f"{name}_train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 2.0 / s}) + "\n" for s in range(1, 6)))
    base = {"heal-2": "heal-1", "heal-3": "heal-2"}.get(name, "tiny")
    return {
        "kind": "checkpoint",
        "set": name,
        "path": str(tmp / name),
        "files": {},
        "steps": 5,
        "final_loss": 0.4,
        "train_log": str(log),
        "base": base,
        "examples": examples,
    }


def correct_counts(score: float) -> list[int]:
    """gsm8k's per-problem counts (n = 2, 10 problems): the first 10 * score problems solved."""
    return [2 if i < round(10 * score) else 0 for i in range(10)]


def evaluation() -> list[list[dict]]:
    """Every checkpoint on gsm8k (with per-problem counts) and math500 (without)."""
    versions = {"lm_eval": "0.4.13", "transformers": "5.19.0"}
    return [
        [
            {
                "checkpoint": ckpt,
                "benchmark": bench,
                "avg_at_n": score,
                "avg_at_n_stderr": 0.1,
                "correct_counts": correct_counts(score) if bench == "gsm8k" else None,
                "seeds": {"bootstrap": 0},
                "greedy_acc": score,
                "greedy_acc_stderr": 0.05,
                "pass_at_n": min(1.0, 2 * score),
                "pass_at_n_stderr": 0.1,
                "num_problems": 10,
                "n_samples": 2,
                "temperature": 0.6,
                "top_p": 0.95,
                "max_gen_toks": 256,
                "limit": 10,
                "backend": "hf",
                "versions": versions,
            }
        ]
        for ckpt, score in EVAL.items()
        for bench in ("gsm8k", "math500")
    ]


def build_config(
    tmp: Path, stages: tuple[str, ...] = STAGE_NAMES, kept_repairs: int = 3
) -> ReportPipeline:
    cands, summaries = candidates()
    records = {
        "generate": [
            [trajectory(p, s) for p in ("p0", "p1", "p2") for s in range(K)],
            [trajectory(p, s) for p in ("p3", "p4", "p5") for s in range(K)],
        ],
        "repair": [cands + summaries],
        "score": [scored(cands) + summaries],
        "curriculum": curriculum(cands, kept_repairs),
        "train-1": [[checkpoint(tmp, "heal-1", 12)]],
        "train-2": [[checkpoint(tmp, "heal-2", 15)]],
        "train-3": [[checkpoint(tmp, "heal-3", 18)]],
        "train-baselines": [[checkpoint(tmp, "rs", 12)], [checkpoint(tmp, "flat", 18)]],
        "evaluate": evaluation(),
    }
    counters = {
        "repair": [{"dropped_no_correct_continuation": 1}],
        "curriculum": [{"dropped_top_lambda": 1, "dropped_not_in_set": n} for n in (6, 3, 0, 6, 0)],
    }
    counters["curriculum"][2] |= ORACLE_COUNTERS
    return ReportPipeline(
        workdir=str(tmp / "run"),
        executor="debug",
        canned=CannedConfig({k: v for k, v in records.items() if k in stages}, counters),
    )
