"""The loaded teacher for ``repair``: breakpoints, one batched generate call per chunk, judging.

Input: (trajectory group, bucket) pairs of the problems that need work. Output: candidate records
and one ``repair_summary`` per problem (see ``repair.py``). Heavy (torch or vllm): imported only by
``RepairStage.run`` when a chunk has work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from heal_batch.method.trajectory import breakpoint_dict, breakpoint_of, stored_entropies
from heal_batch.records import GUIDED_REFERENCE
from heal_batch.stages.repair.jobs import (
    Job,
    Work,
    candidate_record,
    failed_paths,
    guided_job,
    judge,
    repair_job,
    summary_record,
)
from heal_batch.stages.teacher import TeacherConfig


@dataclass
class _Problem:
    group: Sequence[dict[str, Any]]
    bucket: str
    reference: bool
    jobs: list[Job] = field(default_factory=list)
    breakpoints: Counter = field(default_factory=Counter)
    entropy_methods: Counter = field(default_factory=Counter)
    paths: int = 0


class RepairTeacher:
    """The teacher continuing GEAR prefixes; ``memory_bytes`` is the task's memory, which sizes a
    vLLM engine's KV cache on CPU (None: measured free memory)."""

    def __init__(self, teacher: TeacherConfig, cfg, memory_bytes: int | None = None):
        from heal_batch.backends.models import resolve_model
        from heal_batch.method.grading import verifier_version
        from heal_batch.stages.teacher import make_generator, model_revision

        self.teacher, self.cfg = teacher, cfg
        self.generator = make_generator(teacher, memory_bytes, self._scorer_reserve())
        self.meta = {
            "model": teacher.model,
            "model_revision": model_revision(resolve_model(teacher.model)),
            "backend": teacher.backend,
            "verifier": verifier_version(),
        }
        self._scorer: tuple[Any, Any] | None = None

    def repair(self, todo: Sequence[Work]) -> list[dict[str, Any]]:
        """Candidates and summaries for the given problems, in problem order."""
        problems = [self._plan(work) for work in todo]
        self._add_repair_jobs([p for p in problems if p.bucket == "corner"])
        jobs = [job for p in problems for job in p.jobs]
        outputs = iter(self._generate(jobs)) if jobs else iter(())
        records: list[dict[str, Any]] = []
        for p in problems:
            records.extend(self._judge(p, [next(outputs) for _ in p.jobs]))
        return records

    def _plan(self, work: Work) -> _Problem:
        from heal_batch.stages.teacher import render_prompt

        problem = _Problem(work.group, work.bucket, work.reference)
        if self.cfg.guided(work.bucket, work.reference):
            tok = self.generator.tokenizer
            kind = GUIDED_REFERENCE if work.reference else "answer_guided"
            render = lambda u, a: render_prompt(tok, self.teacher, u, a)  # noqa: E731
            problem.jobs.append(guided_job(work.group[0], render, self.cfg, kind))
        return problem

    def _add_repair_jobs(self, corners: list[_Problem]) -> None:
        """Breakpoints of the chosen failed paths (exact entropies first when asked for)."""
        paths = {id(p): failed_paths(p.group, self.cfg.paths_per_problem) for p in corners}
        chosen = [r for p in corners for r in paths[id(p)]]
        entropies = self._entropies(chosen)
        for p in corners:
            p.paths = len(paths[id(p)])
            repairs = []
            for source in paths[id(p)]:
                ents, method = entropies[source["id"]]
                steps, bp = breakpoint_of(source, self.cfg.gear, ents, self.cfg.seed)
                p.breakpoints[bp.reason] += 1
                p.entropy_methods[method] += 1
                repairs.append(
                    repair_job(
                        source, bp.char_index, breakpoint_dict(bp, len(steps), method), self.cfg
                    )
                )
            p.jobs[:0] = repairs  # repairs first, then any answer-guided job

    def _entropies(self, records: list[dict[str, Any]]) -> dict[str, tuple[list[float], str]]:
        """Per trajectory: (entropies, method); top-K estimates are re-scored if configured."""
        out = {r["id"]: (stored_entropies(r), r["entropy_method"]) for r in records}
        redo = [r for r in records if self.cfg.exact_entropy and r["entropy_method"] != "exact"]
        if redo:
            from heal_batch.backends.scorer import score

            model, tok = self._exact_scorer()
            scored = score(model, tok, [(r["prompt"], r["token_ids"]) for r in redo])
            out.update(
                {
                    r["id"]: (s.entropies, "exact-rescored")
                    for r, s in zip(redo, scored, strict=True)
                }
            )
        return out

    def _scorer_reserve(self) -> int:
        """GPU bytes a vLLM engine leaves for the exact scorer that re-scores its entropies."""
        if self.teacher.backend != "vllm" or not self.cfg.exact_entropy:
            return 0
        from heal_batch.backends.models import resolve_model
        from heal_batch.backends.vllm_engine import scorer_reserve

        return scorer_reserve(resolve_model(self.teacher.model), self.teacher.dtype)

    def _exact_scorer(self) -> tuple[Any, Any]:
        if self._scorer is None:
            gen = self.generator
            if hasattr(gen, "model"):  # the HF generator already holds the model
                self._scorer = (gen.model, gen.tokenizer)
            else:
                from heal_batch.backends.models import load_model_and_tokenizer

                t = self.teacher
                self._scorer = load_model_and_tokenizer(t.model, t.dtype, t.trust_remote_code)
        return self._scorer

    def _generate(self, jobs: list[Job]) -> list[list[Any]]:
        from heal_batch.backends.base import GenerationParams, SampleRequest

        c = self.cfg
        params = GenerationParams(
            temperature=c.temperature,
            top_p=c.top_p,
            max_new_tokens=c.max_new_tokens,
            seed=c.seed,
            stop=tuple(c.stop),
        )
        return self.generator.generate([SampleRequest(j.prompt, j.seed, j.n) for j in jobs], params)

    def _judge(self, p: _Problem, outputs: list[list[Any]]) -> list[dict[str, Any]]:
        from heal_batch.stages.teacher import user_message

        first = p.group[0]
        meta = {
            **self.meta,
            "bucket": p.bucket,
            "user_prompt": user_message(self.teacher, first["problem"]),
        }
        records, dropped, tally = (
            [],
            Counter(),
            Counter(paths=p.paths if p.bucket == "corner" else 1),
        )
        for job, samples in zip(p.jobs, outputs, strict=True):
            for j, sample in enumerate(samples):
                tally["attempted"] += 1
                tally["generated_tokens"] += len(sample.token_ids)
                judged, reason = judge(job, sample, self.cfg)
                if judged is None:
                    dropped[reason] += 1
                    continue
                tally["kept"] += 1
                records.append(candidate_record(job, j, sample, judged, meta))
        if not p.reference:  # summaries count HEAL's augmented problems only
            records.append(
                summary_record(p.group, p.bucket, tally, dropped, p.breakpoints, p.entropy_methods)
            )
        return records
