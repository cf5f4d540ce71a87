"""lm-eval hooks for the heal_* math tasks: local JSONL loading, prompt, math-verify grading.

Self-contained on purpose: lm-eval imports this file by path (``!function utils.x``), so it may
import only lm-eval's own dependencies (datasets, math_verify), never heal_batch.

Data: ``load_local(data_dir=..., data_file=...)`` is the tasks' ``custom_dataset``. lm-eval calls
it with the task metadata (where ``data_dir`` arrives from ``TaskManager(metadata=...)`` or the
CLI's ``--metadata``) merged with the YAML's ``dataset_kwargs`` (``data_file``). Fallback:
$HEAL_BATCH_DATA.

Grading: ``acc`` counts only an explicit final answer, the last complete ``\\boxed{...}`` (or
``\\fbox``; for GSM8K, ``#### N`` when there is no box); the last loose number of rambling text is
never an answer there. Where the answer stands is a copy of the rule of
``heal_batch.method.answers.final_answer_char_span`` (a parity test holds the two together).
``flex_acc`` is the lenient reading, like lm-eval's gsm8k "flexible-extract": the explicit answer
when there is one, else the last number of the response (small models often answer in prose,
"So the answer is 8."). The answer is compared with the reference by math-verify
(``\\frac{1}{2}`` equals ``0.5``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

PROMPT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
# `meta` is dropped: its fields change type from row to row, which Arrow rejects.
KEEP_FIELDS = ("id", "problem", "answer", "source")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_BARE_RE = re.compile(r"[ \t]+([^\s$.,;]+)")  # TeX's bare argument: \boxed 5
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def load_local(data_dir: str | None = None, data_file: str | None = None, **_metadata):
    """Read ``<data_dir>/<data_file>`` (schema: id, problem, answer, ...) as a one-split
    DatasetDict."""
    import datasets

    data_dir = data_dir or os.environ.get("HEAL_BATCH_DATA")
    if not data_dir:
        raise ValueError(
            "heal_* tasks need the benchmark data folder: pass metadata "
            "{'data_dir': '/path/to/data'} "
            '(lm_eval --metadata \'{"data_dir": "..."}\' or TaskManager(metadata=...)) '
            "or set HEAL_BATCH_DATA"
        )
    path = Path(data_dir) / str(data_file)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} not found (data_dir={data_dir!r})")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                missing = [k for k in ("problem", "answer") if k not in row]
                if missing:
                    raise ValueError(f"{path}:{lineno}: missing field(s) {missing}")
                rows.append({k: str(row.get(k, "")) for k in KEEP_FIELDS})
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def doc_to_text(doc: dict) -> str:
    return f"{doc['problem']}\n{PROMPT_SUFFIX}"


def keep_all(resps, docs):
    """Filter that keeps every repeat (lm-eval's default keeps only the first)."""
    return [list(r) for r in resps]


def process_results(doc: dict, results: list) -> dict:
    return _score(doc["answer"], results, allow_hash=False)


def process_results_gsm8k(doc: dict, results: list) -> dict:
    return _score(doc["answer"], results, allow_hash=True)


def _score(reference: str, results: list, allow_hash: bool) -> dict:
    """acc = mean correctness over the n responses (avg@n); pass_at_n = any correct;
    flex_acc = acc with the last number standing in for a missing explicit answer."""
    responses = results[0] if results and isinstance(results[0], list) else results
    answers = [extract_answer(r, allow_hash) for r in responses]
    correct = [a is not None and is_equivalent(a, reference) for a in answers]
    # lenient: an explicit answer keeps its grade; without one the last number is graded
    loose = [
        (last_number(r) if a is None else None) for a, r in zip(answers, responses, strict=True)
    ]
    flex = [
        c or (x is not None and is_equivalent(x, reference))
        for c, x in zip(correct, loose, strict=True)
    ]
    n = max(len(responses), 1)
    return {
        "acc": sum(correct) / n,
        "pass_at_n": float(any(correct)),
        "answered": sum(a is not None for a in answers) / n,
        "flex_acc": sum(flex) / n,
    }


def last_number(text: str) -> str | None:
    """The last number in the text, thousands commas dropped ("1,200." -> "1200"), or None."""
    hits = _NUMBER_RE.findall(text)
    return hits[-1].replace(",", "") if hits else None


def extract_answer(text: str, allow_hash: bool = False) -> str | None:
    """The last complete ``\\boxed{...}``/``\\fbox{...}`` content, else (if allowed) ``#### N``.

    A box wins over ``####`` wherever that stands (``#### Check`` after a box is a heading). A
    ``####`` answer is the rest of its line without "$", thousands separators and a final ".".
    "" when the answer is stated but blank; None when there is none.
    """
    boxed = _last_boxed(text)
    if boxed is not None or not allow_hash:
        return boxed
    hits = _HASH_RE.findall(text)
    if not hits:
        return None
    answer = hits[-1].strip().rstrip(".").strip()
    return _THOUSANDS_RE.sub("", answer.replace("$", "")).strip()


def _last_boxed(text: str) -> str | None:
    """Trimmed argument of the last box that closes: braces nest, escaped braces do not count."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        i = match.end()
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            close = _matching_brace(text, i)
            if close is not None:
                return text[i + 1 : close].strip()
            continue
        bare = _BARE_RE.match(text, match.end())
        if bare:
            return bare.group(1)
    return None


def _matching_brace(text: str, open_at: int) -> int | None:
    depth, i = 0, open_at
    while i < len(text):
        if text[i] == "\\":  # an escaped brace such as \{ does not open or close a group
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
        i += 1
    return None


def is_equivalent(answer: str, reference: str) -> bool:
    """math-verify equivalence of an extracted answer and the reference answer string."""
    from math_verify import parse, verify

    gold = parse(f"\\boxed{{{reference}}}")
    pred = parse(f"\\boxed{{{answer}}}")
    return bool(gold) and bool(pred) and bool(verify(gold, pred))
