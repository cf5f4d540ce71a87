"""generate: teacher rollouts with per-token entropy, graded.

Input: one problem shard (ingest task i). Output: one trajectory record per (problem, sample);
every problem gets ``k`` samples and its pass rate (``n_correct / k``, what PACE buckets on) is
repeated on each of them. Example record (floats shortened)::

    {"id": "arith-s0-0003#s1", "problem_id": "arith-s0-0003", "sample_index": 1, "seed": 1234,
     "prompt": "<|im_start|>system\\n…<|im_start|>assistant\\n", "completion": "… \\\\boxed{12}.",
     "token_ids": [...], "offsets": [...], "logprobs": "<f16 base64>", "entropies": "<f16 base64>",
     "entropy_method": "exact", "finish_reason": "stop", "extracted_answer": "12", "correct": true,
     "grade_reason": "correct", "verifier": "heal_batch.method.grading/1 math-verify==0.9.0",
     "k": 4, "n_correct": 3, "pass_rate": 0.75, "model": "smollm2-135m-instruct", ...}

Progress is saved every ``chunk_problems`` problems; a killed task resumes from its last chunk and
its shard is identical to an uninterrupted run (samples are seeded per problem, not per batch).

    heal-batch stage generate --config jobs/demo.yaml --shards 0
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from heal_batch.pipeline.chunks import resumable_chunks
from heal_batch.pipeline.contract import Counters, Resources, Task, TaskIO, ref
from heal_batch.stages.teacher import TeacherConfig
from heal_batch.store.manifests import Manifest


@dataclass(frozen=True)
class GenerateConfig:
    """Teacher sampling for every problem.

    Args:
        k: samples per problem.
        temperature: sampling temperature (0 = greedy).
        top_p: nucleus mass (1.0 = off).
        top_k: top-k cut (0 = off).
        max_new_tokens: cap on generated tokens per sample.
        seed: base seed; a problem's samples use seeds derived from (seed, problem id).
        stop: strings that end a sample.
        chunk_problems: problems per saved chunk (resume granularity).
        answer_style: auto (\\boxed{}, else ``#### N``), boxed, or gsm8k.
    """

    k: int = 4
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    chunk_problems: int = 8
    answer_style: str = "auto"


class GenerateStage:
    name: ClassVar[str] = "generate"
    version: ClassVar[int] = 1
    upstream: ClassVar[tuple[str, ...]] = ("ingest",)
    section: ClassVar[str] = "generate"
    resources: ClassVar[Resources] = "array"
    shared: ClassVar[tuple[str, ...]] = ("teacher",)

    def __init__(self, config: GenerateConfig, teacher: TeacherConfig):
        if config.k < 1 or config.chunk_problems < 1:
            raise ValueError("generate.k and generate.chunk_problems must be >= 1")
        self.config, self.teacher = config, teacher

    def fingerprint(self) -> str:
        return ""

    def plan(self, upstream: Mapping[str, Manifest]) -> list[Task]:
        return [
            Task(self.name, t.index, (ref("ingest", t.index),)) for t in upstream["ingest"].tasks
        ]

    def run(self, task: Task, io: TaskIO) -> Counters:
        problems = list(io.read(task.inputs[0]))
        teacher = functools.cache(lambda: _Teacher(self.teacher, io.memory_bytes))
        counters = Counters()
        for _, records in resumable_chunks(
            io,
            problems,
            self.config.chunk_problems,
            lambda chunk: teacher().rollouts(chunk, self.config),
            "problems",
            _tokens_out,
        ):
            for record in records:
                io.write(record)
                counters.keep()
                counters["tokens_out"] += record["n_tokens"]  # throughput: per task seconds
                counters[f"graded_{record['grade_reason']}"] += 1
        return counters


class _Teacher:
    """The loaded teacher (heavy: torch or vllm) and the record builder."""

    def __init__(self, cfg: TeacherConfig, memory_bytes: int | None = None):
        from heal_batch.backends.models import resolve_model
        from heal_batch.method.grading import verifier_version
        from heal_batch.stages.teacher import make_generator, model_revision

        self.cfg = cfg
        self.generator = make_generator(cfg, memory_bytes)
        self.revision = model_revision(resolve_model(cfg.model))
        self.verifier = verifier_version()

    def rollouts(self, problems: list[dict[str, Any]], cfg: GenerateConfig) -> list[dict[str, Any]]:
        from heal_batch.backends.base import GenerationParams, SampleRequest
        from heal_batch.method.seeds import stable_seed
        from heal_batch.stages.teacher import render_prompt

        params = GenerationParams(
            n=cfg.k,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
            stop=tuple(cfg.stop),
        )
        prompts = [
            render_prompt(self.generator.tokenizer, self.cfg, p["problem"]) for p in problems
        ]
        requests = [
            SampleRequest(prompt, stable_seed(cfg.seed, p["id"]) % 2**31, cfg.k)
            for prompt, p in zip(prompts, problems, strict=True)
        ]
        outputs = self.generator.generate(requests, params)
        records = []
        for problem, prompt, samples in zip(problems, prompts, outputs, strict=True):
            records.extend(self._records(problem, prompt, samples, cfg))
        return records

    def _records(self, problem, prompt, samples, cfg: GenerateConfig) -> list[dict[str, Any]]:
        from heal_batch.records import encode_floats

        grades = [_grade(s, problem["answer"], cfg.answer_style) for s in samples]
        n_correct = sum(g.correct for g in grades)
        return [
            {
                "id": f"{problem['id']}#s{i}",
                "problem_id": problem["id"],
                "problem": problem["problem"],
                "reference_answer": problem["answer"],
                "source": problem.get("source"),
                "sample_index": i,
                "seed": s.seed,
                "system_prompt": self.cfg.system_prompt,
                "prompt": prompt,
                "completion": s.text,
                "token_ids": s.token_ids,
                "offsets": s.offsets,
                "logprobs": encode_floats(s.logprobs),
                "entropies": encode_floats(s.entropies),
                "entropy_method": s.entropy_method,
                "n_tokens": len(s.token_ids),
                "finish_reason": s.finish_reason,
                "extracted_answer": g.extracted,
                "correct": g.correct,
                "grade_reason": g.reason,
                "verifier": self.verifier,
                "model": self.cfg.model,
                "model_revision": self.revision,
                "backend": self.cfg.backend,
                "k": len(samples),
                "n_correct": n_correct,
                "pass_rate": n_correct / len(samples),
            }
            for i, (s, g) in enumerate(zip(samples, grades, strict=True))
        ]


def _tokens_out(records: list[dict[str, Any]]) -> int:
    return sum(r["n_tokens"] for r in records)


def _grade(sample, reference: str, style: str):
    """The sample's grade; a prompt that filled the teacher's context (neither backend sends it)
    gets reason ``prompt_too_long``, counted in the receipt as ``graded_prompt_too_long``."""
    from heal_batch.backends.base import prompt_overflow
    from heal_batch.method.grading import Grade, grade

    if prompt_overflow(sample):
        return Grade(False, "prompt_too_long")
    return grade(sample.text, reference, style)
