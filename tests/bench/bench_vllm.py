"""vLLM backend benchmarks on the demo teacher (SmolLM2-135M-Instruct, CPU); prints figures.

    python tests/bench/bench_vllm.py stage    [--problems 48] [--k 8] [--tokens 96]
    python tests/bench/bench_vllm.py e2e      [--problems 24] [--backends vllm,hf]
    python tests/bench/bench_vllm.py passrate [--problems 96] [--k 8] [--dtype float32]

- ``stage``: the generate stage's rollouts (vLLM backend: sampling, top-20 logprobs, conversion,
  grading) against a bare ``vllm.LLM.generate`` on the same engine, prompts and SamplingParams,
  after start-up (ratio; goal >= 0.95). A bare call without logprobs shows what they cost.
- ``e2e``: ``ingest,generate`` through the launcher (local executor, one task, fresh workdir) per
  backend: wall seconds per task including process and engine start-up, and tokens/s.
- ``passrate``: the same seeded sampling requests (T=0.7) on both backends: pass rate of each,
  and the paired difference with a 95 % bootstrap interval over problems (samples of one problem
  are correlated, so problems are the unit).

Figures depend on the machine and its load: run each on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ENGINE = {"max_model_len": 2048, "enforce_eager": True, "max_num_seqs": 64}
MEMORY = 6 << 30


def teacher(backend: str, dtype: str = "bfloat16"):
    from heal_batch.stages.teacher import TeacherConfig

    return TeacherConfig(backend=backend, dtype=dtype, vllm_engine=ENGINE)


def bench_stage(problems: int, k: int, tokens: int) -> None:
    from vllm import SamplingParams

    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.generate import GenerateConfig, _Teacher
    from heal_batch.stages.teacher import render_prompt

    cfg, gen_cfg = teacher("vllm"), GenerateConfig(k=k, max_new_tokens=tokens)
    items = generate_problems(problems, seed=7)
    start = time.perf_counter()
    stage = _Teacher(cfg, MEMORY)
    print(f"engine start-up (eager, with import): {time.perf_counter() - start:.1f} s")
    stage.rollouts(items[:2], gen_cfg)  # first generate compiles the sampler's kernels
    llm, tok = stage.generator.llm, stage.generator.tokenizer
    prompts = [render_prompt(tok, cfg, p["problem"]) for p in items]

    def bare(logprobs: int | None, detokenize: bool = True) -> tuple[float, int]:
        params = [
            SamplingParams(
                n=k,
                temperature=gen_cfg.temperature,
                max_tokens=tokens,
                seed=i,
                logprobs=logprobs,
                detokenize=detokenize,
            )
            for i in range(len(prompts))
        ]
        start = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - start, sum(len(c.token_ids) for o in outs for c in o.outputs)

    start = time.perf_counter()
    records = stage.rollouts(items, gen_cfg)
    stage_s, stage_tok = time.perf_counter() - start, sum(r["n_tokens"] for r in records)
    rates = {
        "logprobs=20": bare(20),
        "logprobs=20, detokenize=False (as the stage)": bare(20, detokenize=False),
        "no logprobs": bare(None),
    }
    stage_rate = stage_tok / stage_s
    print(f"{problems} problems x {k} samples x <= {tokens} tokens, bf16, eager")
    print(f"  stage rollouts: {stage_tok} tokens in {stage_s:.1f} s = {stage_rate:.0f} tok/s")
    for name, (seconds, n) in rates.items():
        rate = n / seconds
        print(
            f"  bare LLM.generate, {name}: {rate:.0f} tok/s; stage / bare {stage_rate / rate:.2f}x"
        )
    print("  goal: stage / bare >= 0.95 with the same logprobs")


def bench_e2e(problems: int, backends: list[str]) -> None:
    import yaml

    from heal_batch.commands.args import config_from_dict
    from heal_batch.executors import make_executor
    from heal_batch.pipeline.launch import launch

    demo = yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text())
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            data = dict(demo, workdir=tmp, executor="local")
            data["teacher"] = {"backend": backend, "dtype": "bfloat16", "vllm_engine": ENGINE}
            data["ingest"] = {"paths": [f"builtin:arith?count={problems}&seed=0"], "num_shards": 1}
            cfg = config_from_dict(data)
            start = time.perf_counter()
            result = launch(
                cfg, make_executor("local"), ["ingest", "generate"], echo=lambda *_: None
            )
            wall = time.perf_counter() - start
            assert not result.failed, result.failed
            (task,) = result.plans[1].manifest.tasks
            out = task.counters["tokens_out"]
            print(
                f"{backend:5s} {problems} problems x {cfg.generate.k}: one task {wall:.0f} s"
                f" end to end (start-up included), {out} tokens, {out / wall:.1f} tok/s overall"
            )


def bench_passrate(problems: int, k: int, tokens: int, dtype: str) -> None:
    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.generate import GenerateConfig, _Teacher

    items = generate_problems(problems, seed=11)
    gen_cfg = GenerateConfig(k=k, max_new_tokens=tokens)
    rates = {}
    for backend in ("vllm", "hf"):
        stage = _Teacher(teacher(backend, dtype), MEMORY)
        start = time.perf_counter()
        records = stage.rollouts(items, gen_cfg)
        by_problem: dict[str, list[bool]] = {}
        for r in records:
            by_problem.setdefault(r["problem_id"], []).append(r["correct"])
        rates[backend] = [sum(v) / len(v) for _, v in sorted(by_problem.items())]
        total = sum(sum(v) for v in by_problem.values())
        print(f"{backend:5s} {total}/{len(records)} correct ({time.perf_counter() - start:.0f} s)")
        del stage
    diffs = [a - b for a, b in zip(rates["vllm"], rates["hf"], strict=True)]
    rng, n = random.Random(0), len(diffs)
    boot = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(4000))
    mean = sum(diffs) / n
    lo, hi = boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot))]
    print(
        f"vLLM - transformers pass rate: {mean:+.3f} (95 % CI {lo:+.3f} .. {hi:+.3f},"
        f" {n} problems x {k} samples, {dtype})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["stage", "e2e", "passrate"])
    parser.add_argument("--problems", type=int)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backends", default="vllm,hf")
    args = parser.parse_args()
    if args.what == "stage":
        bench_stage(args.problems or 48, args.k, args.tokens)
    elif args.what == "e2e":
        bench_e2e(args.problems or 24, args.backends.split(","))
    else:
        bench_passrate(args.problems or 96, args.k, args.tokens, args.dtype)


if __name__ == "__main__":
    main()
