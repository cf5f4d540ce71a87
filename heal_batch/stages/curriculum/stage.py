"""curriculum: all trajectories and scored candidates of a run -> the PACE training sets.

Inputs: every generate shard (natural trajectories) and every score shard (repair and
answer-guided candidates with their ``pure`` scores, summaries, reference ratios), plus the
benchmark files for decontamination. One reduce: every task reads all of them into one pool
(``curriculum_rows.py``), decides the fate of every sample in it (``curriculum_sets.py``:
incorrect, PURE, contaminated, duplicate, near-duplicate, cap) and writes one set. Tasks: 0, 1, 2 = ``heal-1``, ``heal-2``, ``heal-3`` (PACE
stages I, II, III, cumulative), then one task per ``baselines`` entry: ``rs`` (correct teacher
samples only: the rejection-sampling SFT baseline) and ``flat`` (every kind in one stage).
Example record (chat messages; the student's chat template is applied at training time)::

    {"id": "heal-3:arith-s0-0005#s2#c1", "set": "heal-3", "kind": "repair", "bucket": "corner",
     "problem_id": "arith-s0-0005", "source_id": "arith-s0-0005#s2#c1",
     "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "What is ...?"},
                  {"role": "assistant", "content": "... \\\\boxed{12}."}]}

The user turn is the problem as the teacher saw it (``teacher.user_suffix`` appended; few-shot
examples are not copied). Counters: ``kept``, ``kept_<kind>``, ``dropped_<fate>``,
``dropped_not_in_set``, ``reference_ratios``, ``benchmark_problems``; without benchmark data the
decontamination is skipped, logged, and counted as ``decontamination_skipped_no_data``. Every
sample's fate also goes to ``<task scratch>/fates.parquet``.

    heal-batch stage curriculum --config jobs/demo.yaml --curriculum.max_repairs_per_problem 2
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from heal_batch.evaluation.harness import BENCHMARK_FILES, BENCHMARKS, DATA_BENCHMARKS, data_benchmarks
from heal_batch.method.pace import PaceConfig
from heal_batch.records import CANDIDATE_KINDS
from heal_batch.pipeline.contract import Counters, Task, TaskIO, ref, Resources
from heal_batch.stages.curriculum.sets import HEAL_SETS, set_specs
from heal_batch.stages.repair.stage import RepairConfig
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest

DATA_PREFIX = "data_dir:"
FROM_TEACHER = "@teacher"
REPO_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurriculumConfig:
    """PACE training sets: what goes into each stage, caps, PURE, deduplication, decontamination.

    Args:
        baselines: baseline sets after heal-1..3: rs (correct teacher samples only, the
            rejection-sampling SFT baseline) and flat (all kinds mixed in one stage).
        cumulative: heal-N holds every kind introduced at stages <= N (false: only stage N's kind).
        max_natural_per_problem: cap on correct teacher samples per problem (null: no cap).
        max_answer_guided_per_problem: cap on answer-guided samples per problem (null: no cap).
        max_repairs_per_problem: cap on GEAR repairs per problem (null: no cap).
        seed: seed of the choice a cap makes.
        pure_kinds: candidate kinds PURE filters (the rest are kept unfiltered).
        pure_pooling: per_kind (top-lambda share and reference rule applied to each kind's pool)
            or together (one pool for all kinds).
        pure_drop_top_fraction: lambda, share of each pool with the highest ratio R dropped.
        pure_reference_percentile: drop R above this percentile of naturally correct
            trajectories' R (null: off).
        pure_min_reasoning_tokens: drop candidates with fewer tokens than this between the cut
            and the answer (a bare answer after the hint; 0: off).
        pure_answer_reference_percentile: drop candidates whose answer NLL U is above this
            percentile of naturally correct trajectories' U: the reasoning did not derive the
            answer (null: off).
        near_dedup: drop near-duplicates (same text up to case, punctuation and whitespace).
        decontaminate: drop samples whose problem shares a word n-gram with a benchmark problem.
        benchmarks: benchmarks to decontaminate against (names as in evaluate; arith is skipped:
            evaluate draws it without the training problems).
        data_dir: folder with the benchmark JSONL files; null: $HEAL_BATCH_DATA, else
            ../shared/data next to the repository; when none exists decontamination is skipped
            (and counted), a configured folder that does not exist is an error.
        ngram: words per n-gram.
        ignore_grams_in_problems: ignore benchmark n-grams found in at least this many distinct
            training problems (stock phrases of competition problems; null: ignore none).
        system_prompt: "@teacher" (the system prompt the teacher was given), null (no system
            message) or the text of the system message.
    """

    baselines: list[str] = field(default_factory=lambda: ["rs", "flat"])
    cumulative: bool = True
    max_natural_per_problem: int | None = None
    max_answer_guided_per_problem: int | None = 4
    max_repairs_per_problem: int | None = 4
    seed: int = 0
    pure_kinds: list[str] = field(default_factory=lambda: list(CANDIDATE_KINDS))
    pure_pooling: Literal["per_kind", "together"] = "per_kind"
    pure_drop_top_fraction: float = 0.2
    pure_reference_percentile: float | None = 95.0
    pure_min_reasoning_tokens: int = 8
    pure_answer_reference_percentile: float | None = 95.0
    near_dedup: bool = True
    decontaminate: bool = True
    benchmarks: list[str] = field(default_factory=lambda: list(DATA_BENCHMARKS))
    data_dir: str | None = None
    ngram: int = 13
    ignore_grams_in_problems: int | None = 3
    system_prompt: str | None = FROM_TEACHER

    def __post_init__(self) -> None:
        set_specs(self.baselines)  # names
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"curriculum.baselines has a repeated name: {self.baselines}")
        for kind in self.pure_kinds:
            if kind not in CANDIDATE_KINDS:
                raise ValueError(
                    f"curriculum.pure_kinds: {kind!r} is not one of {', '.join(CANDIDATE_KINDS)}"
                )
        if self.pure_pooling not in ("per_kind", "together"):
            raise ValueError(
                f"curriculum.pure_pooling {self.pure_pooling!r} is not per_kind or together"
            )
        for name in self.benchmarks:
            if name not in BENCHMARK_FILES:
                raise ValueError(
                    f"curriculum.benchmarks: unknown {name!r}; valid: {', '.join(BENCHMARKS)}"
                )
        if self.ngram < 1:
            raise ValueError(f"curriculum.ngram must be >= 1, got {self.ngram}")
        self.pace()  # validates the caps

    def pace(self, repair: RepairConfig | None = None) -> PaceConfig:
        """The PaceConfig of these caps and seed, with the bucket thresholds of ``repair``."""
        repair = repair or RepairConfig()
        return PaceConfig(
            easy_min_pass_rate=repair.easy_min_pass_rate,
            corner_max_correct=repair.corner_max_correct,
            max_natural_per_problem=self.max_natural_per_problem,
            max_answer_guided_per_problem=self.max_answer_guided_per_problem,
            max_repairs_per_problem=self.max_repairs_per_problem,
            seed=self.seed,
        )

    def set_names(self) -> list[str]:
        """The training set of each task, in task order."""
        return [spec.name for spec in set_specs(self.baselines)]


def find_data_dir(configured: str | None) -> Path | None:
    """The benchmark folder: ``configured`` (must exist), $HEAL_BATCH_DATA, ../shared/data, or None."""
    if configured:
        path = Path(configured).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"curriculum.data_dir={configured!r}: no such folder")
        return path
    for candidate in (os.environ.get("HEAL_BATCH_DATA"), REPO_DATA):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


class CurriculumStage:
    name: ClassVar[str] = "curriculum"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ("generate", "score")
    section: ClassVar[str] = "curriculum"
    resources: ClassVar[Resources] = "array"
    # repair: the bucket thresholds, so a problem's bucket is the one repair acted on
    shared: ClassVar[tuple[str, ...]] = ("teacher", "repair")

    def __init__(
        self, config: CurriculumConfig, teacher: TeacherConfig, repair: RepairConfig | None = None
    ):
        self.config, self.teacher = config, teacher
        self._pace = config.pace(repair)

    def data_dir(self) -> Path | None:
        return find_data_dir(self.config.data_dir) if self.config.decontaminate else None

    def fingerprint(self) -> str:
        """sha256 over the benchmark files decontamination reads: new benchmark data, new run."""
        if not self.config.decontaminate:
            return ""
        data = self.data_dir()
        if data is None:
            return "decontamination-skipped:no-data"
        sha = hashlib.sha256()
        for name in data_benchmarks(self.config.benchmarks):  # arith is held out by construction
            path = data / BENCHMARK_FILES[name]
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: benchmark file for {name!r} missing (curriculum.benchmarks)"
                )
            sha.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return sha.hexdigest()

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        refs = tuple(ref(s, t.index) for s in self.upstream for t in upstream[s].tasks)
        data = self.data_dir()
        inputs = (*refs, DATA_PREFIX + (str(data) if data else ""))
        return [Task(self.name, i, inputs) for i in range(len(self.config.set_names()))]

    def run(self, task: Task, io: TaskIO) -> Counters:
        from heal_batch.stages.curriculum.rows import read_pool
        from heal_batch.stages.curriculum.sets import assign_fates, select_set

        shards = [v for v in task.inputs if not v.startswith(DATA_PREFIX)]
        data = next((v[len(DATA_PREFIX) :] for v in task.inputs if v.startswith(DATA_PREFIX)), "")
        rows, references = read_pool(shards, io.read, self._pace, self.teacher.user_suffix)
        counters = Counters()
        bad = self._contaminated(rows, Path(data) if data else None, counters)
        table = assign_fates(rows, references, bad, self.config)
        spec = set_specs(self.config.baselines)[task.index]
        kept, set_counters = select_set(table, spec, self.config.cumulative)
        for row in kept.iter_rows(named=True):
            io.write(self._example(spec.name, row))
        counters.update(set_counters)
        counters["reference_ratios"] += sum(r.ratio is not None for r in references)
        table.select("id", "kind", "problem_id", "bucket", "ratio", "fate").write_parquet(
            io.scratch / "fates.parquet"
        )
        return counters

    def _contaminated(self, rows, data: Path | None, counters: Counters) -> set[str]:
        """Problem ids whose text shares an n-gram with a benchmark problem."""
        from heal_batch.evaluation.harness import benchmark_problems
        from heal_batch.method.decontam import build_ngram_index, contaminated, frequent_grams

        if not self.config.decontaminate:
            return set()
        if data is None:
            _log.warning(
                "curriculum: no benchmark data folder (curriculum.data_dir, "
                "$HEAL_BATCH_DATA, %s): decontamination skipped",
                REPO_DATA,
            )
            counters["decontamination_skipped_no_data"] = 1
            return set()
        names = data_benchmarks(self.config.benchmarks)
        texts = [t for name in names for t in benchmark_problems(name, data)]
        counters["benchmark_problems"] = len(texts)
        index = build_ngram_index(texts, self.config.ngram)
        problems = {r["problem_id"]: r["problem"] for r in rows}
        if self.config.ignore_grams_in_problems:
            distinct = set(problems.values())
            index = index.without(
                frequent_grams(distinct, index, self.config.ignore_grams_in_problems)
            )
        return {pid for pid, text in problems.items() if contaminated(text, index)}

    def _example(self, set_name: str, row: dict[str, Any]) -> dict[str, Any]:
        system = (
            row["system"]
            if self.config.system_prompt == FROM_TEACHER
            else self.config.system_prompt
        )
        messages = [{"role": "system", "content": system}] if system else []
        messages += [
            {"role": "user", "content": row["user"]},
            {"role": "assistant", "content": row["assistant"]},
        ]
        return {
            "id": f"{set_name}:{row['id']}",
            "set": set_name,
            "kind": row["kind"],
            "bucket": row["bucket"],
            "problem_id": row["problem_id"],
            "source_id": row["id"],
            "messages": messages,
        }


def heal_set(stage: int) -> str:
    """The set name of PACE stage 1, 2 or 3."""
    return HEAL_SETS[stage - 1]
