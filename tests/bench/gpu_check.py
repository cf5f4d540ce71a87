"""One-GPU check of the GPU paths (H100/H200); each section runs in its own process.

    bash tests/bench/gpu_check.sh                    # all sections, under 8 minutes
    python tests/bench/gpu_check.py generate         # one section: generate scorer train lmeval

Sections, each printing one ``RESULT <section> {json}`` line:

generate  the generate stage's rollouts (vLLM backend: top-K entropy, grading, shard writing)
          against a bare ``vllm.LLM.generate`` loop on the same prompts and engine (goal >= 0.95x);
          then, with the engine still up, the exact scorer loaded beside it: the memory split.
scorer    the exact scorer (heal_batch/backends/scorer.py) against a plain bf16 forward with a full
          log_softmax and entropy, tokens/s and peak memory.
train     ZeRO-2 SFT steps (train_sft, one rank) on GSM8K chats: tokens/s and MFU
          (6 x parameters x tokens/s over the GPU's dense bf16 peak).
lmeval    lm-eval with the vllm backend, greedy, on the first 50 GSM8K test problems.

The model is the demo teacher (``--model``, default smollm2-135m-instruct); benchmark data is
found by heal_batch.data.benchmarks (``$HEAL_BATCH_DATA`` or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Dense bf16 peak by device name (NVIDIA datasheets, SXM); MFU is left out for other GPUs.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
ENGINE = {"max_model_len": 2048, "gpu_memory_utilization": 0.45, "max_num_seqs": 256}


def section_generate(args) -> dict:
    import torch
    from vllm import SamplingParams

    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.generate import GenerateConfig, _Teacher
    from heal_batch.stages.teacher import TeacherConfig, render_prompt
    from heal_batch.store.shards import write_records

    teacher_cfg = TeacherConfig(
        model=args.model, backend="vllm", dtype="bfloat16", vllm_engine=dict(ENGINE)
    )
    gen_cfg = GenerateConfig(k=args.k, max_new_tokens=args.tokens, temperature=0.7)
    items = generate_problems(args.problems, seed=7)
    start = time.perf_counter()
    teacher = _Teacher(teacher_cfg)
    engine_s = time.perf_counter() - start
    teacher.rollouts(items[:4], gen_cfg)  # warm-up (CUDA graphs, sampler)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        records = teacher.rollouts(items, gen_cfg)
        write_records(tmp, records)
        stage_s = time.perf_counter() - start
    stage_tokens = sum(r["n_tokens"] for r in records)

    llm, tok = teacher.generator.llm, teacher.generator.tokenizer
    prompts = [render_prompt(tok, teacher_cfg, p["problem"]) for p in items]
    params = SamplingParams(n=args.k, temperature=0.7, max_tokens=args.tokens, seed=0)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    bare_s = time.perf_counter() - start
    bare_tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    stage_tps, bare_tps = stage_tokens / stage_s, bare_tokens / bare_s
    result = {
        "engine_start_s": round(engine_s, 1),
        "stage_tok_s": round(stage_tps, 1),
        "bare_tok_s": round(bare_tps, 1),
        "ratio": round(stage_tps / bare_tps, 3),
        "stage_tokens": stage_tokens,
        "bare_tokens": bare_tokens,
    }
    result["memory"] = _memory_split(args.model, torch)
    return result


def _memory_split(model_spec: str, torch) -> dict:
    """GPU memory with the vLLM engine up, then the exact scorer loaded and scoring beside it."""
    from heal_batch.backends.models import load_model_and_tokenizer
    from heal_batch.backends.scorer import score

    free, total = torch.cuda.mem_get_info()
    vllm_used = total - free
    torch.cuda.reset_peak_memory_stats()
    model, tok = load_model_and_tokenizer(model_spec, dtype="bfloat16")
    model.to("cuda")
    weights = torch.cuda.memory_allocated()
    text = " ".join(f"{i} plus one is {i + 1}." for i in range(400))
    score(model, tok, [("Count:", text)] * 8, chunk_positions=256, batch_size=8)
    torch.cuda.synchronize()
    free_after, _ = torch.cuda.mem_get_info()
    gib = 1 << 30
    return {
        "total_gib": round(total / gib, 1),
        "vllm_gib": round(vllm_used / gib, 1),
        "scorer_weights_gib": round(weights / gib, 2),
        "scorer_peak_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
        "free_after_gib": round(free_after / gib, 1),
    }


def section_scorer(args) -> dict:
    import torch

    from heal_batch.backends.models import load_model_and_tokenizer
    from heal_batch.backends.scorer import score

    model, tok = load_model_and_tokenizer(args.model, dtype="bfloat16")
    model.to("cuda")
    text = " ".join(f"{i} plus one is {i + 1}." for i in range(4 * args.seq))
    ids = tok(text, add_special_tokens=False)["input_ids"][: args.seq]
    completion = tok.decode(ids)
    rows = 16
    pairs = [("Count:", completion)] * rows

    def ours() -> int:
        out = score(model, tok, pairs, chunk_positions=256, batch_size=rows)
        return sum(len(o.logprobs) for o in out)

    def plain() -> int:
        batch = torch.tensor(
            [tok("Count:" + completion, add_special_tokens=False)["input_ids"]] * rows,
            device="cuda",
        )
        with torch.inference_mode():
            logp = torch.log_softmax(model(batch).logits.float(), -1)
            (-(logp.exp() * logp).sum(-1)).sum().item()
        return int(batch.numel())

    return {
        "seq": args.seq,
        "rows": rows,
        **_timed("scorer", ours, torch),
        **_timed("plain", plain, torch),
    }


def _timed(name: str, fn, torch, repeats: int = 3) -> dict:
    fn()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() - base) / (1 << 20)
    return {f"{name}_tok_s": round(count / best, 1), f"{name}_peak_mib": round(peak)}


def section_train(args) -> dict:
    import torch

    from heal_batch.backends.models import resolve_model
    from heal_batch.data.benchmarks import resolve_data_dir
    from heal_batch.training import TrainConfig, train_sft
    from heal_batch.training.logs import read_log

    data = resolve_data_dir(None, "HEAL_BATCH_DATA")
    chats = []
    with (data / "gsm8k_train.jsonl").open() as fh:
        for line, _ in zip(fh, range(args.train_rows * 4), strict=False):
            row = json.loads(line)
            chats.append(
                {
                    "messages": [
                        {"role": "user", "content": row["problem"]},
                        {"role": "assistant", "content": row["solution"]},
                    ]
                }
            )
    model_dir = resolve_model(args.model)
    cfg = TrainConfig(
        deepspeed="zero2",
        dtype="bf16",
        max_steps=args.steps,
        per_device_batch=4,
        grad_accum=1,
        max_seq_len=2048,
        save_every_steps=0,
        log_every_steps=1,
        keep_ds_checkpoint=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        train_sft(chats, model_dir, Path(tmp) / "sft", cfg)
        log = read_log(Path(tmp) / "sft")[1:]  # drop the warm-up step
    seconds = sum(e["tokens"] / e["tokens_per_s"] for e in log)
    tps = sum(e["tokens"] for e in log) / seconds
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    n_params = meta.num_parameters()
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    mfu = 6 * n_params * tps / peak if peak else None
    return {
        "device": name,
        "params": n_params,
        "steps_timed": len(log),
        "tok_s": round(tps, 1),
        "mfu": round(mfu, 4) if mfu is not None else None,
    }


def section_lmeval(args) -> dict:
    from heal_batch.backends.models import resolve_model
    from heal_batch.evaluation.harness import EvalConfig, run_benchmarks

    cfg = EvalConfig(
        benchmarks=["gsm8k"],
        backend="vllm",
        limit=args.limit,
        n_samples=0,
        greedy=True,
        max_gen_toks=512,
        batch_size=64,
        dtype="bfloat16",
        model_args={"gpu_memory_utilization": 0.6, "max_model_len": 4096},
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        record = run_benchmarks(resolve_model(args.model), ["gsm8k"], cfg, Path(tmp))[0]
        seconds = time.perf_counter() - start
    return {
        "problems": record.get("num_problems"),
        "greedy_acc": record.get("greedy_acc"),
        "greedy_flex_acc": record.get("greedy_flex_acc"),
        "seconds": round(seconds, 1),
    }


SECTIONS = {
    "generate": section_generate,
    "scorer": section_scorer,
    "train": section_train,
    "lmeval": section_lmeval,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--problems", type=int, default=128, help="generate: problems")
    parser.add_argument("--k", type=int, default=4, help="generate: samples per problem")
    parser.add_argument("--tokens", type=int, default=256, help="generate: max new tokens")
    parser.add_argument("--seq", type=int, default=1024, help="scorer: completion tokens")
    parser.add_argument("--steps", type=int, default=12, help="train: optimizer steps")
    parser.add_argument("--train-rows", type=int, default=64, help="train: packed rows wanted")
    parser.add_argument("--limit", type=int, default=50, help="lmeval: GSM8K problems")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"RESULT {args.section} " + json.dumps({"skipped": "no CUDA device"}), flush=True)
        return 0
    result = SECTIONS[args.section](args)
    print(f"RESULT {args.section} " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
