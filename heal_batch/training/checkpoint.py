"""Resumable DeepSpeed checkpoints and the final HF directory with its file hashes.

Layout under a training run's out_dir:

    ds_ckpt/step<N>/...            DeepSpeed save_checkpoint (model, optimizer, lr schedule),
                                   per rank
    ds_ckpt/step<N>/heal_state.json  {"step", "epoch", "step_in_epoch", "fingerprint"}, written last
    ds_ckpt/COMPLETE               the tag of the newest checkpoint whose every rank finished
    hf/                            model safetensors + config, tokenizer, chat template, SHA256SUMS

`COMPLETE` is replaced atomically only after DeepSpeed's closing barrier, so a run killed in the
middle of a save resumes from the previous checkpoint. `hf/` appears by renaming a finished
`hf.tmp/`, so its existence means the stage finished; `SHA256SUMS` (`sha256sum -c` format) lists
every other file in it.

A run's fingerprint (data hash, starting model, world size, learning settings) is stored with each
checkpoint and in the summary; `check_same_run` refuses to resume or reuse a different run.

    state = latest_state(out_dir / "ds_ckpt")        # None on a fresh start
    files = hash_files(out_dir / "hf")               # {"model.safetensors": "ab12...", ...}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import file_sha256, write_text_atomic

COMPLETE = "COMPLETE"
STATE_FILE = "heal_state.json"
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class ResumeState:
    """Where training stands after `step` optimizer steps."""

    tag: str
    step: int
    epoch: int
    step_in_epoch: int
    fingerprint: dict[str, Any]


def latest_state(ckpt_dir: Path) -> ResumeState | None:
    """The newest complete checkpoint's state, or None if there is none."""
    marker = ckpt_dir / COMPLETE
    if not marker.is_file():
        return None
    tag = marker.read_text().strip()
    state_path = ckpt_dir / tag / STATE_FILE
    if not state_path.is_file():
        raise RuntimeError(f"{marker} names {tag!r} but {state_path} is missing; delete {ckpt_dir}")
    return ResumeState(tag=tag, **json.loads(state_path.read_text()))


def save_resumable(
    engine: Any, ckpt_dir: Path, state: ResumeState, keep: int, is_main: bool
) -> None:
    """Collective: every rank calls it. Saves, then marks the tag complete, then prunes."""
    import torch.distributed as dist

    engine.save_checkpoint(str(ckpt_dir), tag=state.tag, save_latest=False)
    if is_main:
        fields = {k: v for k, v in asdict(state).items() if k != "tag"}
        write_text_atomic(ckpt_dir / state.tag / STATE_FILE, json.dumps(fields, sort_keys=True))
        write_text_atomic(ckpt_dir / COMPLETE, state.tag)
        _prune(ckpt_dir, keep)
    dist.barrier()


def load_resumable(engine: Any, ckpt_dir: Path, state: ResumeState) -> None:
    path, _ = engine.load_checkpoint(str(ckpt_dir), tag=state.tag)
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {ckpt_dir / state.tag}")


def save_hf_dir(engine: Any, tokenizer: Any, out_dir: Path, is_main: bool) -> Path:
    """Collective: write out_dir/hf (weights, config, tokenizer, chat template, SHA256SUMS)."""
    import torch.distributed as dist

    module = engine.module
    if engine.zero_optimization_partition_weights():
        state_dict = engine._zero3_consolidated_16bit_state_dict()  # gathers on rank 0
    else:
        state_dict = module.state_dict() if is_main else None
    final, tmp = out_dir / "hf", out_dir / "hf.tmp"
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        module.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_sums(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    dist.barrier()
    return final


def hash_files(directory: Path) -> dict[str, str]:
    """sha256 of every file under directory (relative POSIX paths), SHA256SUMS excluded."""
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != SUMS_FILE:
            out[rel] = file_sha256(path)
    return out


def write_sums(directory: Path) -> dict[str, str]:
    files = hash_files(directory)
    text = "".join(f"{digest}  {rel}\n" for rel, digest in files.items())
    write_text_atomic(directory / SUMS_FILE, text)
    return files


def read_sums(directory: Path) -> dict[str, str]:
    """The file list of a finished HF directory, as written by write_sums."""
    lines = (directory / SUMS_FILE).read_text().splitlines()
    return {rel: digest for digest, rel in (line.split("  ", 1) for line in lines if line)}


def run_fingerprint(records, init_model_dir: str, cfg: Any, world_size: int) -> dict[str, Any]:
    """What must not change between a run and its resume: data, start model, world, settings."""
    data = hashlib.sha256()
    for record in records:
        data.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
        data.update(b"\n")
    return {
        **cfg.resume_fingerprint(),
        "world_size": world_size,
        "init_model_dir": str(init_model_dir),
        "data_sha256": data.hexdigest(),
    }


def check_same_run(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """ValueError naming every setting that differs between `saved` and `current`."""
    diff = {k: (saved.get(k), current.get(k)) for k in current if saved.get(k) != current.get(k)}
    if diff:
        detail = "; ".join(f"{k}: saved {a!r} != now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{where} was written by a different training run ({detail}); "
            "use a new out_dir or delete the old one"
        )


def _prune(ckpt_dir: Path, keep: int) -> None:
    tags = sorted(
        (p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step")),
        key=lambda p: int(p.name.removeprefix("step")),
    )
    for old in tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
