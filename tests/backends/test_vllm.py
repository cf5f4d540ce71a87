"""The vLLM backend's pure conversion (vllm itself is not installed on CPU CI)."""

import math
import subprocess
import sys
from types import SimpleNamespace as NS

import pytest

from heal_batch.backends.entropy import topk_entropy
from heal_batch.backends.tokens import encode
from heal_batch.backends.vllm import sample_from_completion


def _lp(logprob, rank):
    return NS(logprob=logprob, rank=rank, decoded_token=None)


def _completion(tok, text, index=0, extra=()):
    """A CompletionOutput look-alike: each step has a top-2 plus the sampled token."""
    ids = encode(tok, text) + list(extra)
    steps = []
    for i, t in enumerate(ids):
        if i == 1:  # the sampled token was rank 5: outside the top 2, added by vLLM
            steps.append({t: _lp(-3.0, 5), 901: _lp(-0.2, 1), 902: _lp(-1.9, 2)})
        else:
            steps.append({t: _lp(-0.1, 1), 903: _lp(-2.4, 2)})
    return NS(index=index, token_ids=ids, logprobs=steps, text=text, finish_reason="stop")


def test_conversion_builds_a_sample_with_topk_entropy(tiny_tok):
    eos = tiny_tok.eos_token_id
    c = _completion(tiny_tok, "so the answer is 7", index=2, extra=[eos])
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids={eos}, stop=(), topk=2, request_seed=40
    )
    assert s.text == "so the answer is 7" and s.finish_reason == "stop"
    assert s.token_ids == c.token_ids[:-1]  # the trailing EOS is not part of the sample
    assert s.seed == 42 and s.entropy_method == "topk-2"
    assert s.logprobs[0] == -0.1 and s.logprobs[1] == -3.0
    # The sampled token at rank 5 does not enter the top-2 estimate.
    assert s.entropies[1] == pytest.approx(topk_entropy([-0.2, -1.9]))
    assert s.entropies[0] == pytest.approx(topk_entropy([-0.1, -2.4]))
    assert len(s.offsets) == len(s.token_ids) == len(s.entropies) == len(s.logprobs)


def test_conversion_applies_stop_strings_like_the_hf_backend(tiny_tok):
    c = _completion(tiny_tok, "step one\n\nstep two")
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=("\n\n",), topk=2, request_seed=0
    )
    assert s.text == "step one\n\n" and s.finish_reason == "stop"
    plain = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=(), topk=2, request_seed=0
    )
    assert plain.finish_reason == "length" and plain.text == "step one\n\nstep two"


def test_missing_logprobs_become_nan(tiny_tok):
    c = _completion(tiny_tok, "abc")
    c.logprobs[0] = {999: _lp(-0.5, 1)}
    s = sample_from_completion(
        c, tokenizer=tiny_tok, context=[], eos_ids=set(), stop=(), topk=2, request_seed=0
    )
    assert math.isnan(s.logprobs[0])


def test_importing_the_module_does_not_import_vllm():
    code = "import sys, heal_batch.backends.vllm; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
