from heal_batch.backends.tokens import decode_with_offsets, encode, finish_sample


def test_decode_with_offsets_matches_full_decode_and_locates_tokens(tiny_tok):
    ctx = encode(tiny_tok, "<|im_start|>assistant\n")
    text = "We add 3 + 4 = 7. é 日本 so \\boxed{7}"
    ids = encode(tiny_tok, text)
    got, offsets = decode_with_offsets(tiny_tok, ids, context=ctx)
    assert got == tiny_tok.decode(ids) == text
    assert len(offsets) == len(ids) and offsets == sorted(offsets) and offsets[0] == 0
    # Every token's own text starts at its offset (for tokens that complete characters).
    for i, tid in enumerate(ids):
        piece = tiny_tok.decode([tid])
        if "\ufffd" not in piece:
            assert got[offsets[i] :].startswith(piece)


def test_python_fallback_decoder_agrees(tiny_tok):
    class Slow:  # no backend_tokenizer attribute: exercises the windowed decoder
        def decode(self, ids, skip_special_tokens=True):
            return tiny_tok.decode(ids, skip_special_tokens=skip_special_tokens)

    ids = encode(tiny_tok, "so 5 + 6 = 11. é 日本 done")
    assert decode_with_offsets(Slow(), ids) == decode_with_offsets(tiny_tok, ids)


def _finish(tok, ids, stop=(), eos=()):
    n = len(ids)
    return finish_sample(
        tok,
        ids,
        [-1.0] * n,
        list(range(n)),
        context=[],
        eos_ids=set(eos),
        stop=stop,
        entropy_method="exact",
        seed=4,
    )


def test_finish_sample_cuts_at_eos(tiny_tok):
    ids = encode(tiny_tok, "the answer is 7")
    eos = tiny_tok.eos_token_id
    s = _finish(tiny_tok, ids + [eos] + ids, eos=[eos])
    assert s.token_ids == ids and s.text == "the answer is 7" and s.finish_reason == "stop"
    assert s.entropies == [float(i) for i in range(len(ids))] and s.seed == 4


def test_finish_sample_cuts_after_the_first_stop_string(tiny_tok):
    ids = encode(tiny_tok, "step one\n\nstep two\n\nstep three")
    s = _finish(tiny_tok, ids, stop=("\n\n", "three"))
    assert s.text == "step one\n\n" and s.finish_reason == "stop"
    assert tiny_tok.decode(s.token_ids).startswith(s.text)
    assert len(s.logprobs) == len(s.entropies) == len(s.offsets) == len(s.token_ids)


def test_finish_sample_without_stop_is_length(tiny_tok):
    ids = encode(tiny_tok, "no end here")
    s = _finish(tiny_tok, ids, stop=("zzz",))
    assert s.finish_reason == "length" and s.token_ids == ids
