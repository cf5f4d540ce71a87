import pytest
import torch

from heal_batch.backends.base import render_chat
from heal_batch.backends.scorer import score
from heal_batch.backends.tokens import encode


def _direct(model, tok, prompt, completion_ids):
    """Reference: one full forward, log_softmax over all positions."""
    p = encode(tok, prompt)
    ids = torch.tensor([p + completion_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    rows = logp[len(p) - 1 : len(p) - 1 + len(completion_ids)]
    chosen = rows[torch.arange(len(completion_ids)), torch.tensor(completion_ids)]
    return chosen.tolist(), (-(rows.exp() * rows).sum(-1)).tolist()


def test_scorer_agrees_with_direct_log_softmax(tiny):
    model, tok = tiny
    prompts = [
        render_chat(tok, None, "What is 2 + 3?"),
        render_chat(tok, "S", "Add 10 and 20 " * 5),
    ]
    completions = ["We add 2 + 3 = 5.\n\nSo the answer is \\boxed{5}.", "30"]
    pairs = [
        (prompts[0], completions[0]),
        (prompts[1], completions[1]),
        (prompts[1], completions[0]),
    ]
    # chunk 3 < completion length and batch 2 < pairs: chunking and padding both exercised.
    scored = score(model, tok, pairs, chunk_positions=3, batch_size=2)
    for (prompt, completion), sc in zip(pairs, scored, strict=True):
        assert sc.token_ids == encode(tok, completion)
        lps, ents = _direct(model, tok, prompt, sc.token_ids)
        assert sc.logprobs == pytest.approx(lps, abs=1e-4)
        assert sc.entropies == pytest.approx(ents, abs=1e-4)


def test_offsets_locate_tokens_in_the_completion(tiny):
    model, tok = tiny
    completion = "Step one.\n\nStep two: 3 + 4 = 7.\n\nSo \\boxed{7}"
    [sc] = score(model, tok, [(render_chat(tok, None, "Q"), completion)])
    assert len(sc.offsets) == len(sc.token_ids) and sc.offsets[0] == 0
    for tid, start in zip(sc.token_ids, sc.offsets, strict=True):
        assert completion[start:].startswith(tok.decode([tid]))
    # The token that begins the second step sits right after the blank line.
    assert completion.index("Step two") in sc.offsets


def test_token_id_completions_and_empty_ones(tiny):
    model, tok = tiny
    prompt = render_chat(tok, None, "Q")
    ids = encode(tok, "the answer is 7")
    by_text, by_ids, empty = score(
        model, tok, [(prompt, "the answer is 7"), (prompt, ids), (prompt, "")]
    )
    assert by_ids.token_ids == by_text.token_ids and by_ids.offsets == by_text.offsets
    assert by_ids.logprobs == pytest.approx(by_text.logprobs, abs=1e-6)
    assert empty.token_ids == [] and empty.entropies == []


def test_empty_prompt_is_an_error_naming_the_pair(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="pair 1"):
        score(model, tok, [("a", "b"), ("", "b")])


def test_unknown_head_transform_is_detected(tiny, monkeypatch):
    model, tok = tiny
    monkeypatch.setattr(model.config, "logit_scale", 3.0, raising=False)  # scorer scales, model not
    with pytest.raises(RuntimeError, match="LM head"):
        score(model, tok, [(render_chat(tok, None, "Q"), "abc")])
