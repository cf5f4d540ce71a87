"""curriculum: all trajectories and scored candidates of a run -> the PACE training sets.

Inputs: every generate shard (natural trajectories) and every score shard (repair and
answer-guided candidates with their ``pure`` scores, summaries, reference ratios), plus the
benchmark files for decontamination. Tasks: 0, 1, 2 = ``heal-1``, ``heal-2``, ``heal-3`` (PACE
stages I, II, III, cumulative), then one task per ``baselines`` entry: ``rs`` (correct teacher
samples only: the rejection-sampling SFT baseline) and ``flat`` (every kind in one stage).

Each task decides the fate of every sample of the run (``sets.py``: incorrect, PURE,
contaminated, duplicate, near-duplicate, cap) on light columns only (``rows.py``: ids, kinds,
PURE scores, 128-bit dedup keys, where the texts are), so its set is a select on kind and fate;
then it streams its set's texts from the input shards into its one output shard, in set order
(``write.py``). Memory grows with the light columns (about 100 bytes a sample; peak about 4x
that, from building and sorting them) and the distinct problem texts, not with the trajectories
(``tests/bench/bench_curriculum.py``). Decontamination works on the distinct problem texts.
Example record (chat messages; the student's chat template is applied at training time)::

    {"id": "heal-3:arith-s0-0005#s2#c1", "set": "heal-3", "kind": "repair", "bucket": "corner",
     "problem_id": "arith-s0-0005", "source_id": "arith-s0-0005#s2#c1",
     "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "What is ...?"},
                  {"role": "assistant", "content": "... \\\\boxed{12}."}]}

The user turn is the problem as the teacher saw it (``teacher.user_suffix`` appended; few-shot
examples are not copied). Counters: ``kept``, ``kept_<kind>``, ``dropped_<fate>``,
``dropped_not_in_set``, ``reference_ratios``, ``benchmark_problems``, ``reference_too_small``
(1 when a percentile rule is off for want of ``pure.min_reference`` values), per set
``kept_<kind>_derived`` (its examples of built-in problems the oracle calls derived), and in the
heal-3 task PURE against the oracle on built-in problems (``oracle.py``: ``oracle_kept``,
``oracle_kept_derived``, ...); without benchmark data the decontamination is skipped, logged,
and counted as ``decontamination_skipped_no_data``.
PURE's settings are the shared ``pure`` section; the bucket thresholds are the shared ``repair``
section's (the buckets repair acted on). The run key covers the benchmark files' contents, not
their folder (``data_dir`` is left out of the keyed config; the task input names the folder).

    heal-batch stage curriculum --config jobs/demo.yaml --curriculum.max_repairs_per_problem 2
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from heal_batch.data.benchmarks import (
    BENCHMARK_FILES,
    BENCHMARKS,
    DATA_BENCHMARKS,
    data_benchmarks,
    fingerprint,
    resolve_data_dir,
)
from heal_batch.method.pace import BucketThresholds, PaceConfig
from heal_batch.method.pure import PureConfig
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.stages.curriculum.sets import HEAL_SETS, set_specs
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest

DATA_PREFIX = "data_dir:"
FROM_TEACHER = "@teacher"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurriculumConfig:
    """PACE training sets: what goes into each stage, caps, deduplication, decontamination.

    PURE's settings are the ``pure`` section; the bucket thresholds are repair's.

    Args:
        baselines: baseline sets after heal-1..3: rs (correct teacher samples only, the
            rejection-sampling SFT baseline) and flat (all kinds mixed in one stage).
        cumulative: heal-N holds every kind introduced at stages <= N (false: only stage N's kind).
        max_natural_per_problem: cap on correct teacher samples per problem (null: no cap).
        max_answer_guided_per_problem: cap on answer-guided samples per problem (null: no cap).
        max_repairs_per_problem: cap on GEAR repairs per problem (null: no cap).
        seed: seed of the choice a cap makes.
        near_dedup: drop near-duplicates (same text up to case, punctuation and whitespace).
        decontaminate: drop samples whose problem shares a word n-gram with a benchmark problem.
        benchmarks: benchmarks to decontaminate against (names as in evaluate; arith is skipped:
            evaluate draws it without the training problems).
        data_dir: folder with the benchmark JSONL files; null: $HEAL_BATCH_DATA, else
            ../shared/data next to the repository; when none exists decontamination is skipped
            (and counted), a configured folder that does not exist is an error. The run key
            hashes the files' contents, not this path.
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
        for name in self.benchmarks:
            if name not in BENCHMARK_FILES:
                raise ValueError(
                    f"curriculum.benchmarks: unknown {name!r}; valid: {', '.join(BENCHMARKS)}"
                )
        if self.ngram < 1:
            raise ValueError(f"curriculum.ngram must be >= 1, got {self.ngram}")
        if self.ignore_grams_in_problems is not None and self.ignore_grams_in_problems < 0:
            raise ValueError(
                "curriculum.ignore_grams_in_problems must be >= 0 or null, got "
                f"{self.ignore_grams_in_problems}"
            )
        self.pace()  # validates the caps

    def pace(self, buckets: BucketThresholds | None = None) -> PaceConfig:
        """The PaceConfig of these caps and seed, with the bucket thresholds of ``buckets``
        (the repair section; None: PaceConfig's defaults)."""
        thresholds = buckets or PaceConfig()
        return PaceConfig(
            easy_min_pass_rate=thresholds.easy_min_pass_rate,
            corner_max_correct=thresholds.corner_max_correct,
            max_natural_per_problem=self.max_natural_per_problem,
            max_answer_guided_per_problem=self.max_answer_guided_per_problem,
            max_repairs_per_problem=self.max_repairs_per_problem,
            seed=self.seed,
        )

    def set_names(self) -> list[str]:
        """The training set of each task, in task order."""
        return [spec.name for spec in set_specs(self.baselines)]


class CurriculumStage:
    name: ClassVar[str] = "curriculum"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ("generate", "score")
    section: ClassVar[str] = "curriculum"
    resources: ClassVar[Resources] = "array"
    # repair: the bucket thresholds, so a problem's bucket is the one repair acted on
    shared: ClassVar[tuple[str, ...]] = ("teacher", "repair", "pure")

    def __init__(
        self,
        config: CurriculumConfig,
        teacher: TeacherConfig,
        repair: BucketThresholds | None = None,
        pure: PureConfig | None = None,
    ):
        # The keyed config leaves the folder out: fingerprint() hashes what is read from it.
        self.data_setting = config.data_dir
        self.config = dataclasses.replace(config, data_dir=None)
        self.teacher, self.pure = teacher, pure or PureConfig()
        self._pace = config.pace(repair)

    def data_dir(self) -> Path | None:
        """The benchmark folder (``heal_batch.data.benchmarks``' rule); None: not found or off."""
        if not self.config.decontaminate:
            return None
        return resolve_data_dir(self.data_setting, "curriculum.data_dir", required=False)

    def fingerprint(self) -> str:
        """sha256 over the benchmark files decontamination reads: new benchmark data, new run."""
        if not self.config.decontaminate:
            return ""
        data = self.data_dir()
        if data is None:
            return "decontamination-skipped:no-data"
        names = data_benchmarks(self.config.benchmarks)  # arith is held out by construction
        return fingerprint(data / BENCHMARK_FILES[name] for name in names)

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        refs = tuple(ref(s, t.index) for s in self.upstream for t in upstream[s].tasks)
        data = self.data_dir()
        inputs = (*refs, DATA_PREFIX + (str(data) if data else ""))
        return [Task(self.name, i, inputs) for i in range(len(self.config.set_names()))]

    def run(self, task: Task, io: TaskIO) -> Counters:
        from heal_batch.stages.curriculum.oracle import (
            derived_in_set,
            labels_reader,
            oracle_counters,
        )
        from heal_batch.stages.curriculum.rows import read_pool
        from heal_batch.stages.curriculum.sets import assign_fates, select_set
        from heal_batch.stages.curriculum.write import write_in_order

        shards = [v for v in task.inputs if not v.startswith(DATA_PREFIX)]
        data = next((v[len(DATA_PREFIX) :] for v in task.inputs if v.startswith(DATA_PREFIX)), "")
        labels: dict[str, str] = {}  # oracle labels of built-in problems' candidates
        read = labels_reader(io.read, labels)
        pool = read_pool(shards, read, self._pace, self.teacher.user_suffix)
        counters = Counters()
        bad = self._contaminated(pool.problems, Path(data) if data else None, counters)
        references = pool.references[self.pure.reference]
        table = assign_fates(pool.table, references, bad, self.config, self.pure)
        spec = set_specs(self.config.baselines)[task.index]
        kept, set_counters = select_set(table, spec, self.config.cumulative)
        set_counters.update(derived_in_set(kept, labels))
        if spec.name == HEAL_SETS[-1]:  # once per run: the fates do not depend on the set
            counters.update(oracle_counters(table, labels, self.pure.kinds))
            self._check_reference_size(references, counters)
        del pool, table  # the set's light rows are all the texts are fetched by
        write_in_order(
            kept,
            shards,
            io.read,
            lambda r: self._example(spec.name, r),
            io.write,
            io.scratch / "spill",
        )
        counters.update(set_counters)
        counters["reference_ratios"] += len(references[0])
        return counters

    def _check_reference_size(self, references, counters: Counters) -> None:
        from heal_batch.method.pure import reference_too_small

        if reference_too_small(references, self.pure):
            counters["reference_too_small"] += 1
            _log.warning(
                "PURE's %s reference holds %d ratios and %d answer NLLs, fewer than "
                "pure.min_reference=%d: its percentile rules are off for this run (ask for more "
                "reference samples: repair.reference_problems / reference_per_problem)",
                self.pure.reference,
                len(references[0]),
                len(references[1]),
                self.pure.min_reference,
            )

    def _contaminated(
        self, problems: Mapping[str, str], data: Path | None, counters: Counters
    ) -> set[str]:
        """Problem ids whose text shares an n-gram with a benchmark problem."""
        from heal_batch.data.benchmarks import benchmark_problems
        from heal_batch.method.decontam import build_ngram_index, contaminated_texts

        if not self.config.decontaminate:
            return set()
        if data is None:
            _log.warning(
                "curriculum: no benchmark data folder (curriculum.data_dir, $HEAL_BATCH_DATA, "
                "../shared/data): decontamination skipped"
            )
            counters["decontamination_skipped_no_data"] = 1
            return set()
        names = data_benchmarks(self.config.benchmarks)
        texts = [t for name in names for t in benchmark_problems(name, data)]
        counters["benchmark_problems"] = len(texts)
        index = build_ngram_index(texts, self.config.ngram)
        flagged = contaminated_texts(problems.values(), index, self.config.ignore_grams_in_problems)
        return {pid for pid, text in problems.items() if text in flagged}

    def _example(self, set_name: str, record: dict[str, Any]) -> dict[str, Any]:
        """The training example of one input record of the set."""
        from heal_batch.stages.curriculum.rows import sample_bucket, sample_texts

        system, user, assistant = sample_texts(record, self.teacher.user_suffix)
        if self.config.system_prompt != FROM_TEACHER:
            system = self.config.system_prompt
        messages = [{"role": "system", "content": system}] if system else []
        messages += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
        return {
            "id": f"{set_name}:{record['id']}",
            "set": set_name,
            "kind": record.get("kind") or "natural",
            "bucket": sample_bucket(record, self._pace),
            "problem_id": record["problem_id"],
            "source_id": record["id"],
            "messages": messages,
        }


def heal_set(stage: int) -> str:
    """The set name of PACE stage 1, 2 or 3."""
    return HEAL_SETS[stage - 1]
