"""SFT of one PACE stage: chat records + a starting HF model -> a trained HF checkpoint directory.

    result = train_sft(records, "runs/x/checkpoints/stage1/hf", Path("runs/x/checkpoints/stage2"),
                       TrainConfig(epochs=2, grad_accum=8, deepspeed="zero3"))
    result.hf_dir
    # .../stage2/hf: model.safetensors, config, tokenizer, chat_template.jinja, SHA256SUMS

Contract:
- Inputs: `records` ({"messages": [...]}, loss on assistant tokens only), `init_model_dir` (the
  base student or the previous stage's `hf/`; its tokenizer and chat template are used and saved
  again), `out_dir` (owned by this call), `cfg`.
- Runs as one process (sets up a 1-rank group itself) or as every rank of a torch.distributed job
  (RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT from torchrun or submitit's
  `TorchDistributedEnvironment().export()`); every rank gets the same records and arguments.
- Writes out_dir/train_log.jsonl, ds_ckpt/ (resumable, removed at the end unless
  cfg.keep_ds_checkpoint), hf/ and train_summary.json. Calling it again resumes from the newest
  complete checkpoint; on a finished out_dir it only verifies hf/ and returns.
- A resumed or finished out_dir must have been written with the same data, starting model, world
  size and learning settings (`TrainConfig.resume_fingerprint`), else ValueError.

Why a plain loop around `deepspeed.initialize` and not HF `Trainer`: the pieces this stage needs
are the ones Trainer makes awkward. Packing without cross-attention needs position_ids with no
attention_mask (Trainer's collators and length grouping assume otherwise); resuming must restore
the exact data position of a packed, sharded, seeded order; the loss is normalised by the
assistant-token count of the whole global batch, not averaged per micro-batch; and on a GPU-less
box Trainer's accelerate state ignores the process group unless `use_cpu=True` (feasibility.md §3).
The loop is about 150 lines, passes a torch AdamW (no DeepSpeed JIT optimizer build on CPU), and
its tokens/s are within run-to-run noise of a bare DeepSpeed loop (tests/bench/bench_training.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.training import checkpoint as ckpt
from heal_batch.training.batches import BatchPlan
from heal_batch.training.config import TrainConfig
from heal_batch.training.distributed import DistEnv, distributed_env
from heal_batch.training.engine import build_engine
from heal_batch.training.logs import TrainLogger, read_log
from heal_batch.training.loss import fused_next_token_nll, next_token_nll, use_fused
from heal_batch.training.packing import PackedRow, collate, pack_samples, pack_stats
from heal_batch.training.tokenize import tokenize_records

SUMMARY_FILE = "train_summary.json"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished stage produced. `files` maps paths relative to hf_dir to sha256."""

    hf_dir: Path
    steps: int
    final_loss: float
    files: dict[str, str] = field(default_factory=dict)
    resumed_from_step: int = 0
    tokens_per_s: float = 0.0
    nonpad_share: float = 0.0


def train_sft(
    records: list[dict[str, Any]], init_model_dir: str, out_dir: Path, cfg: TrainConfig
) -> TrainResult:
    """Train (or resume, or just verify) one SFT stage; see the module docstring."""
    out_dir = Path(out_dir)
    with distributed_env() as env:
        fingerprint = ckpt.run_fingerprint(records, init_model_dir, cfg, env.world_size)
        finished = _finished(out_dir, fingerprint)
        if finished is not None:
            return finished
        return _train(records, init_model_dir, out_dir, cfg, env, fingerprint)


def _train(records, init_model_dir, out_dir, cfg, env: DistEnv, fingerprint) -> TrainResult:
    import transformers

    transformers.set_seed(cfg.seed)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(init_model_dir)
    rows = _pack(records, tokenizer, cfg)
    plan = BatchPlan(len(rows), cfg.seed, env.world_size, cfg.per_device_batch, cfg.grad_accum)
    total = plan.total_steps(cfg.epochs, cfg.max_steps)
    engine, keep_alive = build_engine(init_model_dir, cfg, env, total)
    start = _resume(engine, out_dir / "ds_ckpt", fingerprint)
    logger = None
    if env.is_main:
        logger = TrainLogger(out_dir, cfg.log_tensorboard, start, cfg.to_dict())
    try:
        run = _Run(engine, rows, plan, cfg, env, tokenizer.pad_token_id)
        stats = run.steps(start, total, out_dir, logger, fingerprint)
    finally:
        if logger is not None:
            logger.close()
    hf_dir = ckpt.save_hf_dir(engine, tokenizer, out_dir, env.is_main)
    del keep_alive
    final_loss = stats["final_loss"] if stats["final_loss"] is not None else _last_loss(out_dir)
    result = TrainResult(
        hf_dir,
        total,
        final_loss,
        ckpt.read_sums(hf_dir),
        start,
        stats["tokens_per_s"],
        stats["nonpad_share"],
    )
    _write_summary(out_dir, result, fingerprint, cfg, env)
    return result


class _Run:
    """The step loop: forward/backward over a rank's micro-batches, log, checkpoint."""

    def __init__(self, engine, rows: list[PackedRow], plan: BatchPlan, cfg, env, pad_id) -> None:
        self.engine, self.rows, self.plan, self.cfg, self.env = engine, rows, plan, cfg, env
        self.pad_id = pad_id if pad_id is not None else 0
        stage = engine.zero_optimization_stage()
        self.fused = use_fused(cfg.fused_loss, env.device.split(":")[0], stage)
        _log.info("SFT loss: %s", "Liger fused linear cross-entropy" if self.fused else "chunked")

    def steps(self, start: int, total: int, out_dir: Path, logger, fingerprint) -> dict[str, Any]:
        tokens = padded = 0
        seconds, loss, began = 0.0, None, time.perf_counter()
        for step in range(start, total):
            t0 = time.perf_counter()
            lr = self.engine.get_lr()[0]
            loss, step_tokens, step_padded = self._one_step(step)
            dt = time.perf_counter() - t0
            tokens, padded, seconds = tokens + step_tokens, padded + step_padded, seconds + dt
            done = step + 1
            if logger is not None and (done % self.cfg.log_every_steps == 0 or done == total):
                epoch, _ = self.plan.position(step)
                logger.write(self._record(done, epoch, loss, lr, step_tokens, dt, began))
            if self.cfg.save_every_steps and done % self.cfg.save_every_steps == 0 and done < total:
                self._save(done, out_dir / "ds_ckpt", fingerprint)
        return {
            "final_loss": loss,
            "tokens_per_s": tokens / seconds if seconds else 0.0,
            "nonpad_share": tokens / padded if padded else 0.0,
        }

    def _one_step(self, step: int) -> tuple[float, int, int]:
        import torch
        import torch.distributed as dist

        global_rows = [self.rows[i] for i in self.plan.global_rows(step)]
        n_labels = max(1, sum(row.num_labels for row in global_rows))
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.env.device)
        padded = 0
        for micro in self.plan.micro_batches(step, self.env.rank):
            batch = collate([self.rows[i] for i in micro], self.pad_id)
            padded += batch["input_ids"].numel()
            nll = self._nll(batch)
            # DeepSpeed averages gradients over ranks: scale so the step's gradient is the mean
            # over all assistant tokens of the global batch, whatever their split over
            # micro-batches.
            self.engine.backward(nll * (self.env.world_size / n_labels), scale_wrt_gas=False)
            self.engine.step()
            loss_sum += nll.detach().float()
        if self.env.world_size > 1:
            dist.all_reduce(loss_sum)
            padded_t = torch.tensor([padded], device=self.env.device)
            dist.all_reduce(padded_t)
            padded = int(padded_t.item())
        step_tokens = sum(len(row.input_ids) for row in global_rows)
        return loss_sum.item() / n_labels, step_tokens, padded

    def _nll(self, batch: dict[str, Any]) -> Any:
        device = self.env.device
        inputs = {
            "input_ids": batch["input_ids"].to(device),
            "position_ids": batch["position_ids"].to(device),
            "use_cache": False,  # a cache object disables transformers' packed-sequence mask
        }
        labels = batch["labels"].to(device)
        if self.fused:  # the decoder alone: the head's matmul happens inside Liger's kernel
            model = self.engine.module
            hidden = model.get_decoder()(**inputs).last_hidden_state
            softcap = getattr(model.config, "final_logit_softcapping", None)
            weight = model.get_output_embeddings().weight
            return fused_next_token_nll(hidden, weight, labels, softcap)
        return next_token_nll(self.engine(**inputs).logits, labels)

    def _record(self, step, epoch, loss, lr, tokens, dt, began) -> dict[str, Any]:
        norm = self.engine.get_global_grad_norm()
        return {
            "step": step,
            "epoch": epoch,
            "loss": loss,
            "lr": lr,
            "grad_norm": float(norm) if norm is not None else None,
            "tokens": tokens,
            "tokens_per_s": tokens / dt if dt else 0.0,
            "elapsed_s": time.perf_counter() - began,
        }

    def _save(self, done: int, ckpt_dir: Path, fingerprint: dict[str, Any]) -> None:
        epoch, at = self.plan.position(done)
        state = ckpt.ResumeState(f"step{done}", done, epoch, at, fingerprint)
        ckpt.save_resumable(
            self.engine, ckpt_dir, state, self.cfg.keep_checkpoints, self.env.is_main
        )


def _pack(records, tokenizer, cfg: TrainConfig) -> list[PackedRow]:
    samples, tstats = tokenize_records(records, tokenizer, cfg.max_seq_len)
    rows = pack_samples(samples, cfg.max_seq_len, cfg.seed)
    pstats = pack_stats(rows, cfg.max_seq_len)
    _log.info(
        "tokenized %s; packed %d samples into %d rows (fill %.3f)",
        tstats,
        pstats.samples,
        pstats.rows,
        pstats.fill,
    )
    return rows


def _resume(engine, ckpt_dir: Path, fingerprint: dict[str, Any]) -> int:
    state = ckpt.latest_state(ckpt_dir)
    if state is None:
        return 0
    ckpt.check_same_run(state.fingerprint, fingerprint, ckpt_dir)
    ckpt.load_resumable(engine, ckpt_dir, state)
    _log.info("resumed from %s at step %d", ckpt_dir / state.tag, state.step)
    return state.step


def _finished(out_dir: Path, fingerprint: dict[str, Any]) -> TrainResult | None:
    summary_path, hf_dir = out_dir / SUMMARY_FILE, out_dir / "hf"
    if not (summary_path.is_file() and (hf_dir / ckpt.SUMS_FILE).is_file()):
        return None
    summary = json.loads(summary_path.read_text())
    ckpt.check_same_run(summary.pop("fingerprint"), fingerprint, summary_path)
    files = ckpt.read_sums(hf_dir)
    if ckpt.hash_files(hf_dir) != files:
        raise RuntimeError(
            f"{hf_dir} does not match its {ckpt.SUMS_FILE}; delete {out_dir} and retrain"
        )
    summary.pop("config", None)
    return TrainResult(hf_dir=hf_dir, files=files, **summary)


def _write_summary(out_dir, result: TrainResult, fingerprint, cfg: TrainConfig, env) -> None:
    import torch.distributed as dist

    if env.is_main:
        summary = {k: v for k, v in asdict(result).items() if k not in ("hf_dir", "files")}
        summary.update(fingerprint=fingerprint, config=cfg.to_dict())
        tmp = out_dir / (SUMMARY_FILE + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
        tmp.replace(out_dir / SUMMARY_FILE)
        if not cfg.keep_ds_checkpoint:
            shutil.rmtree(out_dir / "ds_ckpt", ignore_errors=True)
    dist.barrier()


def _last_loss(out_dir: Path) -> float:
    entries = read_log(out_dir)
    return entries[-1]["loss"] if entries else float("nan")
