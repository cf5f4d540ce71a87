"""Generate-stage and scorer benchmarks on the demo teacher (SmolLM2-135M-Instruct); prints figures.

    python tests/bench/bench_generate.py [--problems 8] [--k 2] [--tokens 64]

1. generate-stage tokens/s (rollouts + exact entropy + grading + shard writing) against a bare
   transformers ``generate`` loop on the same prompts and settings (ratio; goal >= 0.97);
2. scorer tokens/s and peak RSS against a plain forward pass with full log_softmax, at two
   sequence lengths (goal >= 0.9x speed; scorer memory flat in sequence length x vocab);
3. bytes per trajectory record, compressed and uncompressed, and of the entropy field per token.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bench_generate(problems: int, k: int, tokens: int, workdir: Path) -> None:
    import torch

    from heal_batch.data.builtin import generate_problems
    from heal_batch.stages.generate import GenerateConfig, _Teacher
    from heal_batch.stages.teacher import TeacherConfig, render_prompt
    from heal_batch.store.shards import write_records

    teacher_cfg, gen_cfg = TeacherConfig(), GenerateConfig(k=k, max_new_tokens=tokens)
    items = generate_problems(problems, seed=7)
    teacher = _Teacher(teacher_cfg)  # loading is not part of either timing
    start = time.perf_counter()
    records = teacher.rollouts(items, gen_cfg)  # sampling + exact entropy + grading
    address = write_records(workdir, records)
    stage_s = time.perf_counter() - start
    generated = sum(r["n_tokens"] for r in records)

    # Bare loop: same model, prompts, sampling settings and batch size; no entropy, grading or I/O.
    model, tok = teacher.generator.model, teacher.generator.tokenizer
    rows = [render_prompt(tok, teacher_cfg, p["problem"]) for p in items for _ in range(k)]
    tok.padding_side = "left"
    start, bare_tokens = time.perf_counter(), 0
    for b in range(0, len(rows), teacher_cfg.batch_size):
        batch = tok(
            rows[b : b + teacher_cfg.batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.inference_mode():
            out = model.generate(
                **batch,
                do_sample=True,
                temperature=gen_cfg.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=tokens,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        bare_tokens += int((new != tok.pad_token_id).sum())
    bare_s = time.perf_counter() - start
    print(
        f"generate stage path: {generated / stage_s:6.1f} tok/s "
        f"({generated} tokens, {stage_s:.1f} s); "
        f"bare generate loop: {bare_tokens / bare_s:6.1f} tok/s "
        f"({bare_tokens} tokens, {bare_s:.1f} s); "
        f"ratio {(generated / stage_s) / (bare_tokens / bare_s):.2f}"
    )
    from heal_batch.store.shards import shard_path

    path = shard_path(workdir, address)
    raw = sum(
        len(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        for r in records
    )
    ent = sum(len(r["entropies"]) for r in records)
    print(
        f"trajectory records: {raw / len(records):.0f} B uncompressed, "
        f"{path.stat().st_size / len(records):.0f} B "
        f"compressed per record; entropy field {ent / max(generated, 1):.2f} B/token "
        "(float16 base64)"
    )
    print(
        "teacher pass rate on these problems: "
        f"{sum(r['correct'] for r in records) / len(records):.2f}"
    )


SCORER_CHILD = """
import resource, sys, time, torch
from heal_batch.backends.models import load_model_and_tokenizer
from heal_batch.backends.scorer import score
model, tok = load_model_and_tokenizer("smollm2-135m-instruct", dtype="float32")
n, mode = int(sys.argv[1]), sys.argv[2]
text = " ".join(str(i) + " plus one is " + str(i + 1) + "." for i in range(4 * n))
ids = tok(text, add_special_tokens=False)["input_ids"][:n]
completion = tok.decode(ids)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if mode == "scorer":
    out = score(model, tok, [("Count:", completion)] * 4, chunk_positions=256, batch_size=4)
    count = sum(len(o.logprobs) for o in out)
else:
    batch = torch.tensor([tok("Count:" + completion, add_special_tokens=False)["input_ids"]] * 4)
    with torch.inference_mode():
        logp = torch.log_softmax(model(batch).logits.float(), -1)
        ent = -(logp.exp() * logp).sum(-1)
    count = int(batch.numel())
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count / seconds, (peak - base) / 1024)
"""


def bench_scorer() -> None:
    for n in (256, 1024):
        figures = {}
        for mode in ("scorer", "plain"):
            out = subprocess.run(
                [sys.executable, "-c", SCORER_CHILD, str(n), mode],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            ).stdout.split()
            figures[mode] = (float(out[0]), float(out[1]))
        (s_tps, s_mb), (p_tps, p_mb) = figures["scorer"], figures["plain"]
        print(
            f"scorer at {n} tokens x 4: {s_tps:7.1f} tok/s, +{s_mb:6.0f} MB peak RSS; "
            "plain forward: "
            f"{p_tps:7.1f} tok/s, +{p_mb:6.0f} MB; speed ratio {s_tps / p_tps:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_generate(args.problems, args.k, args.tokens, Path(tmp) / "run")
    bench_scorer()
