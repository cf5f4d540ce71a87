"""evaluate: every checkpoint x every benchmark through lm-eval, one result record per pair.

Inputs: the checkpoint records of the training stages (one per task of train-1, train-2, train-3,
train-baselines) plus the base student (``student.model``, or ``evaluate.base_model`` when set),
and the benchmark JSONL files in the data folder. Output: one shard per (checkpoint, benchmark)
task holding one record, the dict of :func:`heal_batch.evaluation.harness.run_benchmark` plus
where the model came from, e.g.::

    {"checkpoint": "heal-2", "checkpoint_shard": "<address>", "path": "/run/checkpoints/…/hf",
     "model_revision": "sha256:…" (config.json + weight file sizes, see stages.teacher),
     "benchmark": "gsm8k", "avg_at_n": 0.31, "avg_at_n_stderr": 0.05, "greedy_acc": 0.3, …,
     "n_samples": 2, "temperature": 0.6, "limit": 10, "versions": {"lm_eval": "0.4.13", …},
     "results_file": "<workdir>/runs/evaluate/<key>/work/<i>/lm_eval/results_<ts>.json", …}

lm-eval's own files (results JSON, per-sample JSONL) stay in the task's scratch folder
``runs/evaluate/<run_key>/work/<i>/lm_eval/`` of the run folder.

Task order: checkpoint-major, ``index = checkpoint_number * len(benchmarks) + benchmark_number``,
checkpoints in the order base, train-1 tasks, train-2 tasks, train-3 tasks, train-baselines tasks.
Task inputs: ``(model, "benchmark:<name>", "data_dir:<abs path>")`` where model is ``@train-2/0`` (a
checkpoint shard, resolved by the worker) or ``model:<spec>`` for the base student.

The data folder is resolved once, at planning time, by the one rule of
``heal_batch.data.benchmarks`` (``evaluate.data_dir``, else ``$HEAL_BATCH_DATA``, else
``../shared/data`` next to the checkout), so every task names the same folder. The run key covers
the benchmark files' contents (fingerprint), not the folder's path.

``arith`` is the one benchmark that is not read from the data folder: held-out built-in arithmetic
problems (``evaluate.arith_count`` of them, seed ``evaluate.arith_seed``) that skip every problem
text of ``ingest.paths``, so none was trained on. Each arith task writes the file into its own
scratch folder (``data_dir:generated`` in its inputs) and lm-eval reads it from there.

    heal-batch stage evaluate --config jobs/demo.yaml --evaluate.limit 10 --evaluate.backend vllm
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from heal_batch.data.benchmarks import (
    BENCHMARK_FILES,
    GENERATED_BENCHMARKS,
    data_benchmarks,
    fingerprint,
    resolve_data_dir,
)
from heal_batch.evaluation.harness import EvalConfig
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.store.manifests import Manifest

TRAIN_STAGES = ("train-1", "train-2", "train-3", "train-baselines")
DEMO_MODEL = "smollm2-135m-instruct"
BASE = "base"
MODEL_PREFIX, BENCH_PREFIX, DATA_PREFIX = "model:", "benchmark:", "data_dir:"
GENERATED = "generated"  # data_dir of a benchmark the task writes itself (arith)


@dataclass(frozen=True)
class EvaluateConfig(EvalConfig):
    """Evaluation of the base student and every checkpoint (lm-eval on local JSONL, math-verify).

    Defaults are sized for the CPU demo; a real run sets benchmarks, limit: null, max_gen_toks,
    n_samples and backend: vllm.

    Args:
        benchmarks: any of math500 aime24 aime25 amc23 gsm8k minerva_math olympiadbench, and
            arith (held-out built-in arithmetic, generated; see arith_count).
        data_dir: folder with the benchmark JSONL files; null: $HEAL_BATCH_DATA, else
            ../shared/data next to the repository checkout.
        n_samples: samples per problem for avg@n (pass@1 averaged over n); 0 skips the sampled pass.
        temperature: sampling temperature of the sampled pass.
        top_p: nucleus mass of the sampled pass.
        max_gen_toks: generation budget per response (both passes).
        limit: evaluate only the first `limit` problems of each benchmark; null: all.
        backend: hf (transformers, CPU or GPU) or vllm (GPU).
        batch_size: lm-eval batch size.
        apply_chat_template: render prompts with the model's chat template.
        think_end: end-of-thinking marker (e.g. "</think>"); text up to it is dropped before
            grading.
        dtype: model dtype (auto, bfloat16, float32, ...).
        greedy: also run the greedy pass (greedy_acc).
        seed: random seed for sampling.
        model_args: extra lm-eval model arguments (e.g. {"max_model_len": 8192}).
        tasks_dir: folder with the task YAMLs; null: the repository's eval/.
        base_model: the model evaluated as row "base"; null: the student (student.model).
        include_base: evaluate the base student too.
        arith_count: problems in the held-out arith benchmark.
        arith_seed: its seed (problems whose text is in ingest.paths are skipped).
    """

    benchmarks: list[str] = field(default_factory=lambda: ["gsm8k", "math500"])
    n_samples: int = 2
    max_gen_toks: int = 256
    limit: int | None = 10
    base_model: str | None = None
    include_base: bool = True
    arith_count: int = 30
    arith_seed: int = 1000

    def eval_config(self, data_dir: str | Path | None = None) -> EvalConfig:
        """The plain EvalConfig that run_benchmark takes (without this stage's own fields)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalConfig)}
        if data_dir is not None:
            values["data_dir"] = str(data_dir)
        return EvalConfig(**values)


class EvaluateStage:
    name: ClassVar[str] = "evaluate"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = TRAIN_STAGES
    section: ClassVar[str] = "evaluate"
    resources: ClassVar[Resources] = "array"
    # the base row is the untrained student; arith skips the training problems of ingest.paths
    shared: ClassVar[tuple[str, ...]] = ("student", "ingest")

    def __init__(self, config: EvaluateConfig, student: Any = None, ingest: Any = None):
        if not config.benchmarks:
            raise ValueError("evaluate.benchmarks is empty: name at least one benchmark")
        if config.arith_count < 1:
            raise ValueError(f"evaluate.arith_count must be >= 1, got {config.arith_count}")
        # The run key covers the benchmark files' contents (fingerprint), not their folder: the
        # folder is kept here and the keyed config says data_dir: null, so two checkouts agree.
        self.data_setting = config.data_dir
        self.config = dataclasses.replace(config, data_dir=None)
        self.base_model = config.base_model or (student.model if student else DEMO_MODEL)
        self.training_paths = list(ingest.paths) if ingest else []

    def data_dir(self) -> Path | None:
        """The benchmark data folder; None when every benchmark is generated (arith only)."""
        read = data_benchmarks(self.config.benchmarks)
        return resolve_data_dir(self.data_setting, "evaluate.data_dir") if read else None

    def fingerprint(self) -> str:
        """sha256 over the benchmark files read (and custom task YAMLs): new data, new run key."""
        data = self.data_dir()
        names = data_benchmarks(self.config.benchmarks) if data else []
        files = [data / BENCHMARK_FILES[b] for b in names]
        if self.config.tasks_dir:
            files += sorted(Path(self.config.tasks_dir).glob("*"))
        return fingerprint(files)

    def models(self, upstream: Mapping[str, Manifest]) -> list[str]:
        """The model input of each checkpoint, in task order."""
        models = [MODEL_PREFIX + self.base_model] if self.config.include_base else []
        for stage in self.upstream:
            models += [ref(stage, t.index) for t in upstream[stage].tasks]
        return models

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        folder = self.data_dir()
        pairs = [(m, b) for m in self.models(upstream) for b in self.config.benchmarks]
        return [
            Task(self.name, i, (m, BENCH_PREFIX + b, DATA_PREFIX + _data_input(b, folder)))
            for i, (m, b) in enumerate(pairs)
        ]

    def run(self, task: Task, io: TaskIO) -> Counters:
        from heal_batch.evaluation.harness import run_benchmark
        from heal_batch.stages.teacher import model_revision

        model, bench, data_dir = _parse_inputs(task)
        source = self._source(model, io)
        source["model_revision"] = model_revision(source["path"])
        out = io.scratch / "lm_eval"
        shutil.rmtree(out, ignore_errors=True)  # the record points at this attempt's files only
        if data_dir == GENERATED:  # arith, the one generated benchmark
            data_dir = str(self._write_arith(io.scratch / "data").parent)
        cfg = self.config.eval_config(data_dir)
        result = run_benchmark(source["path"], bench, cfg, out, io.memory_bytes)
        io.write(result | source)
        counters = Counters()
        counters.keep()
        counters["problems"] += int(result["num_problems"])
        return counters

    def _write_arith(self, folder: Path) -> Path:
        """The held-out arith file in ``folder``, without any problem text of ingest.paths."""
        from heal_batch.data.problem_files import iter_problems

        seen = {record["problem"] for _, record in iter_problems(self.training_paths)}
        return write_arith(folder, self.config.arith_count, self.config.arith_seed, exclude=seen)

    def _source(self, model: str, io: TaskIO) -> dict[str, Any]:
        """checkpoint (set name), checkpoint_shard (address) and path of the model to evaluate."""
        if model.startswith(MODEL_PREFIX):
            from heal_batch.backends.models import resolve_model

            return {
                "checkpoint": BASE,
                "checkpoint_shard": None,
                "path": resolve_model(model[len(MODEL_PREFIX) :]),
            }
        records = [r for r in io.read(model) if r.get("kind") == "checkpoint"]
        if len(records) != 1 or not records[0].get("path") or not records[0].get("set"):
            raise ValueError(
                f"checkpoint shard {model}: expected one record with kind 'checkpoint', "
                f"'set' and 'path', found {len(records)} checkpoint record(s)"
            )
        record = records[0]
        if not Path(record["path"]).is_dir():
            raise FileNotFoundError(
                f"checkpoint {record['set']!r} (shard {model}): "
                f"model folder {record['path']} does not exist"
            )
        return {"checkpoint": record["set"], "checkpoint_shard": model, "path": record["path"]}


def write_arith(data_dir: str | Path, count: int, seed: int, exclude=()) -> Path:
    """Write the held-out arith benchmark file into ``data_dir`` (atomically) and return its path.

    ``heldout_problems(count, seed, exclude)``: pass the training problem texts as ``exclude``.
    """
    from heal_batch.data.builtin import heldout_problems
    from heal_batch.store.atomic import write_text_atomic

    rows = heldout_problems(count, seed, exclude)
    path = Path(data_dir) / BENCHMARK_FILES["arith"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return path


def _data_input(benchmark: str, folder: Path | None) -> str:
    return GENERATED if benchmark in GENERATED_BENCHMARKS else str(folder)


def _parse_inputs(task: Task) -> tuple[str, str, str]:
    """(model shard address or model:<spec>, benchmark name, data folder) of a resolved task."""
    if (
        len(task.inputs) != 3
        or not task.inputs[1].startswith(BENCH_PREFIX)
        or not task.inputs[2].startswith(DATA_PREFIX)
    ):
        raise ValueError(
            f"evaluate task {task.index}: inputs {task.inputs!r} are not "
            f"(model, 'benchmark:<name>', 'data_dir:<path>'); re-plan the stage"
        )
    return task.inputs[0], task.inputs[1][len(BENCH_PREFIX) :], task.inputs[2][len(DATA_PREFIX) :]
