"""Loaded tiny models for backend tests (built by the session fixtures in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny(tiny_llama):
    """(model fp32 on CPU, tokenizer) of the tiny random Llama."""
    from heal_batch.backends.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_llama), dtype="float32", device="cpu")


@pytest.fixture(scope="session")
def tiny_tok(tiny):
    return tiny[1]
