"""Packing: whole samples per row, restarting positions, and no attention across samples."""

from __future__ import annotations

import pytest

from heal_batch.training.packing import collate, pack_samples, pack_stats
from heal_batch.training.tokenize import IGNORE, TokenizedSample, tokenize_records


def _sample(n: int, start: int = 10) -> TokenizedSample:
    ids = tuple(range(start, start + n))
    return TokenizedSample(ids, ids)


def test_best_fit_decreasing_fills_rows_and_keeps_samples_whole():
    samples = [_sample(n, 100 * i) for i, n in enumerate([7, 3, 5, 5, 2, 8, 1])]
    rows = pack_samples(samples, max_seq_len=10, seed=0)
    assert sorted(n for row in rows for n in row.lengths) == [1, 2, 3, 5, 5, 7, 8]
    assert len(rows) == 4  # 31 tokens need >= 4 rows of 10
    assert all(len(row.input_ids) <= 10 for row in rows)
    stats = pack_stats(rows, 10)
    assert (stats.samples, stats.rows, stats.tokens) == (7, 4, 31) and stats.fill == 31 / 40
    whole = {s.input_ids for s in samples}
    for row in rows:
        at = 0
        for n in row.lengths:
            assert row.input_ids[at : at + n] in whole
            assert row.labels[at] == IGNORE  # never predicted across the sample boundary
            assert row.labels[at + 1 : at + n] == row.input_ids[at + 1 : at + n]
            at += n


def test_packing_is_deterministic_and_rejects_overlong_samples():
    samples = [_sample(n, 10 * n) for n in [4, 4, 4, 3, 3, 2]]
    assert pack_samples(samples, 8, seed=1) == pack_samples(samples, 8, seed=1)
    with pytest.raises(ValueError, match="sample 0 has 9 tokens > max_seq_len=8"):
        pack_samples([_sample(9)], 8, seed=0)


def test_collate_pads_to_longest_row_with_its_own_position_block():
    rows = pack_samples([_sample(3, 10), _sample(2, 20), _sample(4, 30)], 5, seed=0)
    batch = collate(rows, pad_id=0)
    assert batch["input_ids"].shape == (2, 5)
    by_len = {tuple(r.lengths): i for i, r in enumerate(rows)}
    short = by_len[(4,)]
    assert batch["position_ids"][short].tolist() == [0, 1, 2, 3, 0]
    assert batch["labels"][short].tolist()[-1] == IGNORE
    assert batch["position_ids"][1 - short].tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_logits_of_each_sample_alone(tiny_llama, tiny_tokenizer, records, attn):
    import torch
    from transformers import AutoModelForCausalLM

    samples, _ = tokenize_records(records[:9], tiny_tokenizer, max_seq_len=256)
    rows = pack_samples(samples, max_seq_len=260, seed=0)
    assert any(len(row.lengths) >= 3 for row in rows)
    batch = collate(rows, pad_id=tiny_tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation=attn).eval()
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        for r, row in enumerate(rows):
            at = 0
            for n in row.lengths:
                alone = model(input_ids=batch["input_ids"][r : r + 1, at : at + n]).logits[0]
                torch.testing.assert_close(packed[r, at : at + n], alone, atol=1e-5, rtol=1e-5)
                at += n
        # Control: without the position restarts the later samples would see the earlier ones.
        plain = model(input_ids=batch["input_ids"], use_cache=False).logits
        assert (plain - packed).abs().max() > 1e-3
