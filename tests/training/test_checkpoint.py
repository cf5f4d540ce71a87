"""File hashes of the HF directory and the resume pointer (no DeepSpeed needed)."""

from __future__ import annotations

import hashlib
import json

import pytest

from heal_batch.training import checkpoint as ckpt


def test_sums_list_every_file_but_themselves(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01")
    files = ckpt.write_sums(tmp_path)
    assert files == {
        "a.txt": hashlib.sha256(b"alpha").hexdigest(),
        "sub/b.bin": hashlib.sha256(b"\x00\x01").hexdigest(),
    }
    assert ckpt.read_sums(tmp_path) == files == ckpt.hash_files(tmp_path)
    line = (tmp_path / ckpt.SUMS_FILE).read_text().splitlines()[0]
    assert line == f"{files['a.txt']}  a.txt"  # `sha256sum -c SHA256SUMS` format


def test_latest_state_follows_the_complete_marker_only(tmp_path):
    assert ckpt.latest_state(tmp_path) is None
    state = {"step": 4, "epoch": 1, "step_in_epoch": 0, "fingerprint": {"lr": 1e-5}}
    (tmp_path / "step4").mkdir()
    (tmp_path / "step4" / ckpt.STATE_FILE).write_text(json.dumps(state))
    (tmp_path / "step6").mkdir()  # a save that was killed before it completed
    (tmp_path / ckpt.COMPLETE).write_text("step4")
    got = ckpt.latest_state(tmp_path)
    assert (got.tag, got.step, got.epoch, got.fingerprint) == ("step4", 4, 1, {"lr": 1e-5})
    (tmp_path / ckpt.COMPLETE).write_text("step6")
    with pytest.raises(RuntimeError, match="names 'step6' but .* is missing"):
        ckpt.latest_state(tmp_path)


def test_prune_keeps_the_newest_tags(tmp_path):
    for step in (2, 10, 4, 8):
        (tmp_path / f"step{step}").mkdir()
    ckpt._prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step10", "step8"]
