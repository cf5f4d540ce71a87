"""Curriculum reduce at growing sizes: time and peak memory of one set task; prints figures.

    python tests/bench/bench_curriculum.py                  # 1e4, 1e5 and 1e6 samples
    python tests/bench/bench_curriculum.py 10000 100000     # chosen sizes

For each size, synthetic generate and score shards are written (k = 30 samples per problem,
20,000 records a shard, about 1 KB a record with its per-token entropy string; hard problems
get answer-guided candidates, corner cases repairs with PURE scores), then ONE curriculum task
(heal-3, the biggest set) runs in a fresh process, which reports its wall time and peak RSS.
The goal: peak memory flat in the number of samples apart from the light columns (``light``
below: the polars table of ids, scores and dedup keys; texts are streamed, never held).
Decontamination runs against a small benchmark file so its per-problem pass is in the time.
"""

from __future__ import annotations

import base64
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

K = 30
SHARD_RECORDS = 20_000
WORDS = ["we", "add", "the", "two", "numbers", "then", "carry", "one", "so", "total", "is", "next"]


def write_run(root: Path, n_samples: int) -> list[str]:
    """Generate + score shards of about ``n_samples`` samples; returns their addresses."""
    from heal_batch.store.shards import ShardWriter

    rng = random.Random(n_samples)
    store = root / "store"
    gen: list[str] = []
    writers = [ShardWriter(store)]
    scored = ShardWriter(store)
    for p in range(max(1, n_samples // K)):
        if writers[-1].count >= SHARD_RECORDS:
            gen.append(writers[-1].close())
            writers.append(ShardWriter(store))
        correct = rng.choice([0, 1, 3, 8, 15, 22, 30])
        for record in _problem(rng, p, correct):
            (scored if record.get("kind") else writers[-1]).write(record)
    gen.append(writers[-1].close())
    return [*gen, scored.close()]


def _problem(rng: random.Random, p: int, n_correct: int):
    pid = f"bench-{p:07d}"
    problem = f"Problem {p}: what is {rng.randint(1, 999)} plus {rng.randint(1, 999)}?"
    base = {"problem_id": pid, "problem": problem, "system_prompt": "Reason step by step."}
    for i in range(K):
        text = " ".join(rng.choices(WORDS, k=60)) + f" \\boxed{{{p}}}"
        yield {
            **base,
            "id": f"{pid}#s{i}",
            "completion": text,
            "correct": i < n_correct,
            "k": K,
            "n_correct": n_correct,
            "reference_answer": str(p),
            "entropies": "f16:" + base64.b64encode(rng.randbytes(400)).decode(),
        }
    kind = "repair" if n_correct <= 1 else "answer_guided" if n_correct < K // 2 else None
    for j in range(8 if kind else 0):
        pure = {
            "ratio": rng.lognormvariate(0, 1),
            "answer_nll": rng.random(),
            "reasoning_tokens": rng.randint(0, 40),
            "unscored_reason": None,
        }
        yield {
            **base,
            "kind": kind,
            "id": f"{pid}#c{j}",
            "user_prompt": problem,
            "correct": True,
            "text": " ".join(rng.choices(WORDS, k=60)),
            "pure": pure,
            "bucket": "corner" if kind == "repair" else "hard",
        }
    if p % 50 == 0:
        yield {
            "kind": "reference",
            "id": f"{pid}#s0",
            "problem_id": pid,
            "pure": {"ratio": rng.lognormvariate(0, 1), "answer_nll": rng.random()},
        }


def reduce_once(root: Path, shards: list[str]) -> dict:
    """One curriculum task (heal-3) in this process: seconds, peak RSS, light table size."""
    import polars  # noqa: F401  (loaded before the baseline, so "at start" includes it)

    from heal_batch.pipeline.contract import Task, TaskIO
    from heal_batch.stages.curriculum import rows
    from heal_batch.stages.curriculum.stage import DATA_PREFIX, CurriculumConfig, CurriculumStage
    from heal_batch.stages.teacher import TeacherConfig
    from heal_batch.store.layout import Layout

    light = {}
    read_pool = rows.read_pool

    def measured(*args, **kwargs):
        pool = read_pool(*args, **kwargs)
        light["bytes"] = pool.table.estimated_size()
        return pool

    rows.read_pool = measured
    before = _rss_mb("VmRSS")
    cfg = CurriculumConfig(benchmarks=["gsm8k"], data_dir=str(root / "data"))
    stage = CurriculumStage(cfg, TeacherConfig(user_suffix=""))
    io = TaskIO(Layout(root), "curriculum", "0" * 64, 2)
    start = time.perf_counter()
    counters = stage.run(Task("curriculum", 2, (*shards, DATA_PREFIX + str(root / "data"))), io)
    _, written = io.close()
    return {
        "seconds": time.perf_counter() - start,
        "peak_mb": _rss_mb(),
        "start_mb": before,
        "light_mb": light["bytes"] / 1e6,
        "samples": counters["total"],
        "written": written,
    }


def _rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory in MB. ru_maxrss would
    do for the peak, but Linux keeps it across fork and exec: it would show the parent's."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    line = next(x for x in status.read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def main(sizes: list[int]) -> None:
    print(
        f"{'samples':>9} {'written':>8} {'seconds':>8} {'peak MB':>8} {'at start':>8} "
        f"{'light MB':>8} {'peak - start - light':>21}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "data").mkdir()
            bench = {"problem": "Natalia sold clips to 48 of her friends in April, and then..."}
            (root / "data" / "gsm8k_test.jsonl").write_text(json.dumps(bench) + "\n")
            shards = write_run(root, n)
            out = subprocess.run(
                [sys.executable, __file__, "--reduce", tmp, *shards],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rest = r["peak_mb"] - r["start_mb"] - r["light_mb"]
            print(
                f"{r['samples']:>9} {r['written']:>8} {r['seconds']:>8.1f} "
                f"{r['peak_mb']:>8.0f} {r['start_mb']:>8.0f} {r['light_mb']:>8.1f} "
                f"{rest:>21.0f}",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reduce"]:
        print(json.dumps(reduce_once(Path(sys.argv[2]), sys.argv[3:])))
    else:
        main([int(float(a)) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
