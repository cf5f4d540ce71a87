"""Benchmark: train_sft against a bare DeepSpeed loop on the same packed data and model.

    python tests/bench/bench_training.py [--steps 8] [--records 400] [--max-seq-len 2048]

Prints (one run, not a pass/fail timer):
- packing: share of non-padding tokens in the packed rows and in the trained micro-batches
  (goal >= 95 %), on GSM8K-train chats from ../shared/data (or HEAL_BATCH_DATA);
- training tokens/s of train_sft and of a bare loop (deepspeed.initialize + forward/backward/step
  over the same micro-batches, no logging, no checkpoints), their ratio (goal >= 0.95), and the
  peak RSS of each. Each variant runs twice, alternating, in a fresh process; the best run of each
  counts (the box is shared, so the fastest run is the least disturbed one). The first step of
  every run is left out (warm-up).

The model is a random Llama (hidden 128, 4 layers, vocab 512) with the test tokenizer, built in a
temporary folder; DeepSpeed ZeRO-2, fp32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("HEAL_BATCH_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/heal_batch/torch_extensions")
)
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def gsm8k_chats(n: int) -> list[dict]:
    chats = []
    with (DATA / "gsm8k_train.jsonl").open() as fh:
        for line, _ in zip(fh, range(n), strict=False):
            row = json.loads(line)
            chats.append(
                {
                    "messages": [
                        {"role": "system", "content": "Solve the problem step by step."},
                        {"role": "user", "content": row["problem"]},
                        {"role": "assistant", "content": row["solution"]},
                    ]
                }
            )
    return chats


def build_model(out_dir: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.fixtures.tiny_models import build_tokenizer

    tok = build_tokenizer(out_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def run_sft(work: Path, cfg_kwargs: dict, tag: str) -> dict:
    from heal_batch.training import TrainConfig, train_sft
    from heal_batch.training.logs import read_log

    out = work / f"sft-{tag}"
    records = json.loads((work / "records.json").read_text())
    result = train_sft(records, str(work / "model"), out, TrainConfig(**cfg_kwargs))
    log = read_log(out)[1:]  # drop the warm-up step
    seconds = sum(e["tokens"] / e["tokens_per_s"] for e in log)
    return {
        "tokens_per_s": sum(e["tokens"] for e in log) / seconds,
        "nonpad_share": result.nonpad_share,
        "final_loss": result.final_loss,
    }


def run_bare(work: Path, cfg_kwargs: dict) -> dict:
    """The reference: what any DeepSpeed SFT script does, with nothing around it."""
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal_batch.training.batches import BatchPlan
    from heal_batch.training.config import TrainConfig, build_deepspeed_config
    from heal_batch.training.distributed import distributed_env
    from heal_batch.training.packing import collate, pack_samples
    from heal_batch.training.tokenize import tokenize_records

    cfg = TrainConfig(**cfg_kwargs)
    with distributed_env():
        tok = AutoTokenizer.from_pretrained(work / "model")
        samples, _ = tokenize_records(
            json.loads((work / "records.json").read_text()), tok, cfg.max_seq_len
        )
        rows = pack_samples(samples, cfg.max_seq_len, cfg.seed)
        plan = BatchPlan(len(rows), cfg.seed, 1, cfg.per_device_batch, cfg.grad_accum)
        model = AutoModelForCausalLM.from_pretrained(work / "model", attn_implementation="sdpa")
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        engine, *_ = deepspeed.initialize(
            model=model, optimizer=opt, config=build_deepspeed_config(cfg, 1, bf16=False)
        )
        tokens, seconds = 0, 0.0
        for step in range(cfg.max_steps):
            s0 = time.perf_counter()
            for micro in plan.micro_batches(step, 0):
                batch = collate([rows[i] for i in micro], tok.pad_token_id)
                loss = engine(**batch, use_cache=False).loss
                engine.backward(loss)
                engine.step()
            loss.item()
            if step:  # drop the warm-up step, as for train_sft
                seconds += time.perf_counter() - s0
                tokens += sum(len(rows[i].input_ids) for i in plan.global_rows(step))
    return {"tokens_per_s": tokens / seconds}


def packing_report(work: Path, lengths: list[int]) -> None:
    """Print the non-pad share of packed rows for 2000 GSM8K-train chats at each row length."""
    from transformers import AutoTokenizer

    from heal_batch.training.packing import pack_samples, pack_stats
    from heal_batch.training.tokenize import TokenizedSample, tokenize_records

    tok = AutoTokenizer.from_pretrained(work / "model")
    full, _ = tokenize_records(gsm8k_chats(2000), tok, max_seq_len=1 << 30)
    sizes = sorted(len(s.input_ids) for s in full)
    print(
        f"packing {len(full)} GSM8K-train chats, median {sizes[len(sizes) // 2]} tokens "
        f"(the 512-token test vocabulary makes text ~2.5x longer than a real tokenizer):"
    )
    for length in lengths:
        cut = [TokenizedSample(s.input_ids[:length], s.labels[:length]) for s in full]
        stats = pack_stats(pack_samples(cut, length, 0), length)
        truncated = sum(size > length for size in sizes)
        print(
            f"  rows of {length:5d}: {stats.rows:5d} rows, non-pad share {stats.fill:.1%}, "
            f"{truncated} samples truncated"
        )


def child(args: argparse.Namespace) -> None:
    cfg = json.loads(args.cfg)
    t0 = time.perf_counter()
    out = run_bare(args.work, cfg) if args.variant == "bare" else run_sft(args.work, cfg, args.tag)
    out["wall_s"] = time.perf_counter() - t0  # imports, model load, init, steps (sft: final save)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def parent(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        compare(Path(tmp), args)


def compare(work: Path, args: argparse.Namespace) -> None:
    build_model(work / "model")
    (work / "records.json").write_text(json.dumps(gsm8k_chats(args.records)))
    cfg = {
        "lr": 1e-4,
        "per_device_batch": 1,
        "grad_accum": 2,
        "max_seq_len": args.max_seq_len,
        "max_steps": args.steps,
        "save_every_steps": 0,
        "deepspeed": "zero2",
        "dtype": "fp32",
    }
    packing_report(work, sorted({512, 1024, args.max_seq_len}))
    runs: dict[str, list[dict]] = {"bare": [], "sft": []}
    for i, variant in enumerate(["bare", "sft", "bare", "sft"]):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--work",
            str(work),
            "--tag",
            str(i),
            "--cfg",
            json.dumps(cfg),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode or not lines:
            sys.exit(f"{variant} run failed:\n{done.stderr[-3000:]}")
        runs[variant].append(json.loads(lines[-1][7:]))
        print(f"  run {i}: {variant:4s} {runs[variant][-1]}", flush=True)
    bare = max(runs["bare"], key=lambda r: r["tokens_per_s"])
    sft = max(runs["sft"], key=lambda r: r["tokens_per_s"])
    print(
        f"train_sft {sft['tokens_per_s']:.0f} tok/s vs bare DeepSpeed loop "
        f"{bare['tokens_per_s']:.0f} tok/s: ratio {sft['tokens_per_s'] / bare['tokens_per_s']:.3f} "
        "(goal >= 0.95)"
    )
    print(f"micro-batch non-pad share in train_sft: {sft['nonpad_share']:.1%} (goal >= 95 %)")
    print(
        f"peak RSS: train_sft {sft['peak_rss_mb']:.0f} MB, bare {bare['peak_rss_mb']:.0f} MB; "
        "wall per run (torch imports, init, steps; sft also its final save): "
        f"sft {sft['wall_s']:.1f} s, "
        f"bare {bare['wall_s']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--child", dest="variant", choices=["bare", "sft"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--tag", default="0")
    parser.add_argument("--cfg")
    args = parser.parse_args()
    child(args) if args.variant else parent(args)


if __name__ == "__main__":
    main()
