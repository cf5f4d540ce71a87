"""The loaded scoring model for ``score``: teacher-forced log-probs -> PURE blocks.

Input: candidate records (``kind`` repair / answer_guided) and reference items (natural
trajectories with ``kind: reference``). Output: ``{"kind", "id", "pure": {...}}`` per item, the
``pure`` block described in ``score.py``. Heavy (torch): imported only by ``ScoreStage.run``.
"""

from __future__ import annotations

import math
from typing import Any

from heal_batch.method.answers import final_answer_span
from heal_batch.method.gear import GearConfig
from heal_batch.method.hints import hint_prefill
from heal_batch.method.pure import (
    first_step_after,
    first_token_at,
    score_candidate,
    step_perplexities,
)
from heal_batch.method.trajectory import steps_of, token_spans
from heal_batch.stages.teacher import TeacherConfig


class PureScorer:
    def __init__(self, cfg, teacher: TeacherConfig, steps: GearConfig, eps: float):
        """cfg: the ScoreConfig; steps: repair's GearConfig (step delimiter and minimum size);
        eps: PURE's epsilon (``pure.eps``)."""
        from heal_batch.backends.models import load_model_and_tokenizer

        self.cfg, self.teacher, self.steps, self.eps = cfg, teacher, steps, eps
        own = cfg.scorer == "teacher"
        self.name = teacher.model if own else cfg.scorer
        dtype = teacher.dtype if own else cfg.dtype
        self.model, self.tokenizer = load_model_and_tokenizer(
            self.name, dtype, teacher.trust_remote_code
        )

    def score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from heal_batch.backends.scorer import score

        pairs = [self._pair(item) for item in items]
        scored = score(
            self.model,
            self.tokenizer,
            [(p, c) for p, c, _ in pairs],
            chunk_positions=self.cfg.chunk_positions,
            batch_size=self.cfg.batch_size,
        )
        return [
            {"kind": item["kind"], "id": item["id"], "pure": self._block(item, c, cut, s)}
            for item, (_, c, cut), s in zip(items, pairs, scored, strict=True)
        ]

    def _pair(self, item: dict[str, Any]) -> tuple[str, str, int]:
        """(prompt, completion, cut char in the completion) for one item."""
        problem = item["problem"]
        if item["kind"] == "reference":
            return self._prompt(problem), item["completion"], 0
        if not self.cfg.with_hint:
            return self._prompt(problem), item["text"], item["cut_char"]
        if item["hint_placement"] == "prompt":  # the answer-guided user turn is the hint
            return self._prompt(item["hint"]), item["continuation"], 0
        prefill = hint_prefill(item["prefix"], item["hint"])
        return self._prompt(problem, prefill), item["continuation"], 0

    def _prompt(self, user: str, assistant_prefix: str | None = None) -> str:
        from heal_batch.backends.base import render_chat
        from heal_batch.stages.teacher import render_prompt, user_message

        if self.cfg.context == "teacher":
            return render_prompt(self.tokenizer, self.teacher, user, assistant_prefix)
        message = user_message(self.teacher, user)
        return render_chat(self.tokenizer, self.teacher.system_prompt, message, assistant_prefix)

    def _block(self, item: dict[str, Any], text: str, cut: int, scored: Any) -> dict[str, Any]:
        spans = token_spans(scored.offsets, len(text))
        steps = steps_of(
            text, scored.offsets, self.steps.min_step_tokens, self.steps.step_delimiter
        )
        first = first_step_after(steps, cut)
        result = score_candidate(
            item["id"],
            scored.logprobs,
            steps,
            first,
            final_answer_span(text, spans),
            self.eps,
            cut_token=first_token_at(spans, cut),
        )
        ratio, reason = _finite(result.ratio), result.unscored_reason
        if result.ratio is not None and ratio is None:
            reason = "non_finite_ratio"  # a step PPL overflowed: the store holds no inf
        return {
            "ratio": ratio,
            "max_step_ppl": _finite(result.max_step_ppl),
            "answer_nll": _finite(result.answer_nll),
            "step_ppls": [_finite(p) for p in step_perplexities(scored.logprobs, steps, first)],
            "reasoning_tokens": result.reasoning_tokens,
            "first_step": first,
            "n_steps": len(steps),
            "n_tokens": len(scored.token_ids),
            "unscored_reason": reason,
            "scorer": self.name,
            "with_hint": self.cfg.with_hint,
            "context": self.cfg.context,
            "eps": self.eps,
        }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
