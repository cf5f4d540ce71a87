"""Fixtures for the SFT tests: arithmetic chat records and a DeepSpeed JIT cache outside the
repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# DeepSpeed JIT-builds its shm comm op on the first initialize (~40 s); keep it cached across runs.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "heal_batch" / "torch_extensions")
)


def chat_records(n: int, offset: int = 0) -> list[dict]:
    """n single-turn arithmetic chats with a system prompt; answers end in \\boxed{}."""
    out = []
    for i in range(offset, offset + n):
        a, b = i % 13, (i * 7) % 11
        steps = " ".join(f"{a} + {k} = {a + k}." for k in range(1 + i % 4))
        out.append(
            {
                "messages": [
                    {"role": "system", "content": "Answer with a boxed number."},
                    {"role": "user", "content": f"What is {a} + {b}?"},
                    {
                        "role": "assistant",
                        "content": f"{steps} So {a} + {b} = {a + b}. \\boxed{{{a + b}}}",
                    },
                ]
            }
        )
    return out


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return chat_records(48)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)
