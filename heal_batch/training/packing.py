"""Pack tokenized samples into rows of at most max_seq_len tokens without cross-attention.

Input: `TokenizedSample`s. Output: `PackedRow`s, each a concatenation of whole samples, and
collated micro-batches {input_ids, labels, position_ids} as torch tensors.

No cross-contamination: position_ids restart at 0 at every sample and no attention_mask is passed.
transformers (5.19) then derives a block-diagonal causal mask from the position_ids for sdpa and
eager attention (`masking_utils.find_packed_sequence_indices`) and uses varlen kernels for
flash-attention, so a token attends only to earlier tokens of its own sample (tests check that
packed logits equal per-sample logits). The first label of every sample is -100: it would be
predicted from the previous sample's last token, and unpacked training never uses it either.

Rows are filled best-fit-decreasing (longest sample first, into the fullest row it fits), which
leaves little padding; a micro-batch pads only to its longest row, and padding tokens form their
own position block with labels -100.

    rows = pack_samples(samples, max_seq_len=2048, seed=0)
    batch = collate(rows[:4], pad_id=tokenizer.pad_token_id)
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Any

from heal_batch.training.tokenize import IGNORE, TokenizedSample


@dataclass(frozen=True)
class PackedRow:
    """Whole samples back to back; `lengths` gives each sample's token count in order."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    lengths: tuple[int, ...]

    @property
    def num_labels(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)

    def position_ids(self) -> list[int]:
        return [pos for length in self.lengths for pos in range(length)]


@dataclass(frozen=True)
class PackStats:
    samples: int
    rows: int
    tokens: int
    max_seq_len: int

    @property
    def fill(self) -> float:
        """Share of the rows' max_seq_len slots holding real tokens."""
        return self.tokens / max(1, self.rows * self.max_seq_len)


def pack_samples(samples: list[TokenizedSample], max_seq_len: int, seed: int) -> list[PackedRow]:
    """Best-fit-decreasing packing; the seed only breaks ties between equal lengths."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -len(samples[i].input_ids))  # stable: ties keep the shuffle
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (free slots, bin index)
    for i in order:
        size = len(samples[i].input_ids)
        if size > max_seq_len:
            raise ValueError(
                f"sample {i} has {size} tokens > max_seq_len={max_seq_len}; truncate first"
            )
        at = bisect.bisect_left(free, (size, -1))
        if at == len(free):
            bins.append([i])
            room, index = max_seq_len - size, len(bins) - 1
        else:
            room, index = free.pop(at)
            bins[index].append(i)
            room -= size
        bisect.insort(free, (room, index))
    return [_row([samples[i] for i in members]) for members in bins]


def pack_stats(rows: list[PackedRow], max_seq_len: int) -> PackStats:
    samples = sum(len(row.lengths) for row in rows)
    tokens = sum(len(row.input_ids) for row in rows)
    return PackStats(samples=samples, rows=len(rows), tokens=tokens, max_seq_len=max_seq_len)


def collate(rows: list[PackedRow], pad_id: int) -> dict[str, Any]:
    """Right-pad rows to the longest one; returns LongTensors [len(rows), longest]."""
    import torch

    width = max(len(row.input_ids) for row in rows)
    ids, labels, positions = [], [], []
    for row in rows:
        pad = width - len(row.input_ids)
        ids.append(list(row.input_ids) + [pad_id] * pad)
        labels.append(list(row.labels) + [IGNORE] * pad)
        # Padding is its own block (positions restart), so real tokens never attend to it.
        positions.append(row.position_ids() + list(range(pad)))
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(positions, dtype=torch.long),
    }


def _row(members: list[TokenizedSample]) -> PackedRow:
    ids: list[int] = []
    labels: list[int] = []
    for sample in members:
        ids.extend(sample.input_ids)
        labels.extend(sample.labels)
        labels[len(ids) - len(sample.input_ids)] = IGNORE
    return PackedRow(tuple(ids), tuple(labels), tuple(len(s.input_ids) for s in members))
