"""Assistant-only labels from the chat template, truncation and bad records."""

from __future__ import annotations

import pytest

from heal_batch.training.tokenize import IGNORE, tokenize_chat, tokenize_records


def _labelled_text(tok, sample) -> str:
    return tok.decode(
        [t for t, lab in zip(sample.input_ids, sample.labels, strict=True) if lab != IGNORE]
    )


def test_labels_cover_exactly_the_assistant_reply_and_its_end_token(tiny_tokenizer, records):
    sample = tokenize_chat(records[0], tiny_tokenizer)
    reply = records[0]["messages"][-1]["content"]
    assert _labelled_text(tiny_tokenizer, sample) == reply + "<|im_end|>"
    full = tiny_tokenizer.apply_chat_template(records[0]["messages"], tokenize=False)
    assert tiny_tokenizer.decode(sample.input_ids) == full
    # Labelled tokens are a single contiguous run at the end (only the trailing newline after it).
    marks = [lab != IGNORE for lab in sample.labels]
    first, last = marks.index(True), len(marks) - 1 - marks[::-1].index(True)
    assert all(marks[first : last + 1]) and len(marks) - 1 - last <= 1
    assert [lab for lab in sample.labels if lab != IGNORE] == list(
        sample.input_ids[first : last + 1]
    )


def test_multi_turn_labels_every_assistant_turn_only(tiny_tokenizer):
    record = {
        "messages": [
            {"role": "user", "content": "What is 1 + 1?"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "And 2 + 3?"},
            {"role": "assistant", "content": "the answer is 5"},
        ]
    }
    text = _labelled_text(tiny_tokenizer, tokenize_chat(record, tiny_tokenizer))
    assert text == "2<|im_end|>the answer is 5<|im_end|>"


def test_truncation_and_dropping_samples_without_assistant_tokens(tiny_tokenizer, records):
    full = tokenize_chat(records[3], tiny_tokenizer)
    prompt_len = full.labels.index(next(lab for lab in full.labels if lab != IGNORE))
    samples, stats = tokenize_records(records[3:4], tiny_tokenizer, max_seq_len=prompt_len + 2)
    assert stats.truncated == 1 and stats.kept == 1
    assert samples[0].input_ids == full.input_ids[: prompt_len + 2]
    assert samples[0].num_labels == 2
    samples, stats = tokenize_records(records[3:4], tiny_tokenizer, max_seq_len=prompt_len)
    assert samples == [] and stats.dropped_no_assistant_tokens == 1


@pytest.mark.parametrize(
    "record, message",
    [
        ({"text": "hi"}, "record 0: expected a non-empty 'messages'"),
        ({"messages": [{"role": "user"}]}, "record 0, message 0: expected keys"),
    ],
)
def test_bad_records_name_the_record(tiny_tokenizer, record, message):
    with pytest.raises(ValueError, match=message):
        tokenize_records([record], tiny_tokenizer, max_seq_len=64)


def test_template_that_rewrites_history_is_rejected(tiny_tokenizer):
    # A template that drops earlier assistant turns (as Qwen3 does with <think>) breaks prefixes.
    tok = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tok.chat_template = (
        "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}"
        "{{ m.role + ': ' + m.content + '\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    record = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    }
    with pytest.raises(ValueError, match="record 7: the chat template does not render message 1"):
        tokenize_chat(record, tok, index=7)
