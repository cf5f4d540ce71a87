"""Chat records -> token ids and labels with the loss on assistant tokens only.

Input: records `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` and a
fast tokenizer with a chat template. Output: `TokenizedSample(input_ids, labels)` where labels equal
input_ids on the tokens of assistant replies (content plus the end-of-turn token the template puts
after it) and -100 everywhere else. Samples longer than max_seq_len keep their first max_seq_len
tokens; a sample left with no assistant token is dropped and counted.

How the mask is found: the conversation is rendered once to text; for each assistant message i,
rendering messages[:i] with the generation prompt gives where the reply starts and rendering
messages[:i+1] where it ends (trailing whitespace trimmed, so "<|im_end|>" is learned but the
newline after it is not). Tokens whose character offset falls in such a span are labelled. This
works with any template that renders a conversation's prefixes as prefixes of its full text
(ChatML, Llama-3, SmolLM2, single-turn Qwen3); other templates raise ValueError.

    samples, stats = tokenize_records(records, tokenizer, max_seq_len=2048)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class TokenizedSample:
    """One conversation: ids and labels of equal length (labels -100 off assistant tokens)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def num_labels(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass(frozen=True)
class TokenizeStats:
    records: int
    kept: int
    truncated: int
    dropped_no_assistant_tokens: int


def tokenize_records(
    records: list[dict[str, Any]], tokenizer: Any, max_seq_len: int
) -> tuple[list[TokenizedSample], TokenizeStats]:
    """Tokenize every record; drop (and count) those with no assistant token left."""
    samples: list[TokenizedSample] = []
    truncated = dropped = 0
    for index, record in enumerate(records):
        sample = tokenize_chat(record, tokenizer, index=index)
        if len(sample.input_ids) > max_seq_len:
            truncated += 1
            sample = TokenizedSample(sample.input_ids[:max_seq_len], sample.labels[:max_seq_len])
        if sample.num_labels == 0:
            dropped += 1
            continue
        samples.append(sample)
    stats = TokenizeStats(len(records), len(samples), truncated, dropped)
    return samples, stats


def tokenize_chat(record: dict[str, Any], tokenizer: Any, index: int = 0) -> TokenizedSample:
    """Tokenize one chat record in full; `index` only names the record in error messages."""
    messages = _messages(record, index)
    text, spans = _render_with_assistant_spans(messages, tokenizer, index)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [
        tok if any(lo <= start < hi for lo, hi in spans) else IGNORE
        for tok, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return TokenizedSample(tuple(ids), tuple(labels))


def _messages(record: dict[str, Any], index: int) -> list[dict[str, str]]:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"record {index}: expected a non-empty 'messages' list of {{role, content}}"
        )
    for turn, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= message.keys():
            raise ValueError(f"record {index}, message {turn}: expected keys 'role' and 'content'")
    return messages


def _render_with_assistant_spans(
    messages: list[dict[str, str]], tokenizer: Any, index: int
) -> tuple[str, list[tuple[int, int]]]:
    def render(msgs: list[dict[str, str]], gen_prompt: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen_prompt)

    full = render(messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(messages[:i], True) if i else ""
        end_text = render(messages[: i + 1], False)
        if not (full.startswith(end_text) and end_text.startswith(prefix)):
            raise ValueError(
                f"record {index}: the chat template does not render message {i} as a prefix of "
                "the whole conversation, so assistant tokens cannot be located"
            )
        spans.append((len(prefix), len(end_text.rstrip())))
    return full, spans
