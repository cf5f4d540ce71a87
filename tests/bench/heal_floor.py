"""What HEAL put into training, per variant of one or more sweeps: the demo's guaranteed minimum.

    heal-batch sweep --config jobs/demo.yaml --workdir runs/m --seeds 0,1,2 \\
        --stages ingest,generate,repair,score,curriculum --name seeds
    python tests/bench/heal_floor.py runs/m/sweeps/seeds.json [more sweeps ...] \\
        [--min-derived 1] [--min-guided 1]

For each variant of each sweep file: the executor and the generate tasks' thread counts (from
their receipts), the teacher's correct samples, the first generate address (equal addresses mean
equal samples), the easy / hard / corner problems, PURE's guided reference (verified samples, and
whether it reached ``pure.min_reference``), what reached training (answer-guided samples in heal-2
and repairs in heal-3, and how many of each the oracle calls derived: the labels score wrote,
matched by the examples' source ids), and the task minutes of generate, repair and score (summed
over tasks, from the manifests; contended runs read longer). Exits 1 when a variant holds fewer
derived heal-3 repairs or heal-2 answer-guided samples than asked: the check behind the README's
stated minimum. It reads the run folders only; nothing is re-run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def manifest(workdir: Path, stage: str, key: str) -> dict:
    return json.loads((workdir / "manifests" / stage / f"{key}.json").read_text())


def outputs(workdir: Path, m: dict) -> list[list[dict]]:
    from heal_batch.store.layout import Layout
    from heal_batch.store.shards import read_records, shard_path

    store = Layout(str(workdir)).store
    return [list(read_records(shard_path(store, t["output"]))) for t in m["tasks"]]


def threads(workdir: Path, key: str) -> list[int | None]:
    receipts = sorted((workdir / "runs" / "generate" / key / "tasks").glob("*.json"))
    return sorted({json.loads(f.read_text()).get("threads") for f in receipts}, key=str)


def variant_row(workdir: Path, variant: dict) -> dict:
    from heal_batch.method.pure import PureConfig, reference_too_small

    keys = variant["run_keys"]
    stages = ("generate", "repair", "score", "curriculum")
    gen, repair, score, cur = (manifest(workdir, s, keys[s]) for s in stages)
    scored = [r for shard in outputs(workdir, score) for r in shard]
    labels = {r["id"]: r["oracle"] for r in scored if r.get("oracle")}
    pure = PureConfig(**(cur["config"].get("pure") or {}))
    kind = "guided_reference" if pure.reference == "guided" else "reference"
    refs = [r["pure"] for r in scored if r["kind"] == kind]
    ratios = [p["ratio"] for p in refs if p.get("ratio") is not None]
    nlls = [p["answer_nll"] for p in refs if p.get("answer_nll") is not None]
    sets = {shard[0]["set"]: shard for shard in outputs(workdir, cur) if shard}
    heal2, heal3 = sets.get("heal-2", []), sets.get("heal-3", [])
    repairs = [r for r in heal3 if r["kind"] == "repair"]
    guided = [r for r in heal2 if r["kind"] == "answer_guided"]
    return {
        "variant": variant["name"],
        "executor": gen.get("executor"),
        "threads": threads(workdir, keys["generate"]),
        "teacher_correct": f"{gen['counters'].get('graded_correct', 0)}/{gen['counters']['total']}",
        "generate_address": gen["tasks"][0]["output"][:12],
        "easy/hard/corner": "/".join(
            str(repair["counters"].get(f"bucket_{b}", 0)) for b in ("easy", "hard", "corner")
        ),
        "reference": f"{pure.reference} {len(ratios)}"
        + (" (rules off)" if reference_too_small((ratios, nlls), pure) else ""),
        "heal2_answer_guided": len(guided),
        "heal2_derived": sum(labels.get(r["source_id"]) == "derived" for r in guided),
        "heal3_repairs": len(repairs),
        "heal3_derived": sum(labels.get(r["source_id"]) == "derived" for r in repairs),
        "task_min (gen/rep/score)": "/".join(
            f"{m['seconds'] / 60:.1f}" for m in (gen, repair, score)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--min-derived", type=int, default=0)
    parser.add_argument("--min-guided", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for path in args.sweeps:
        sweep = json.loads(path.read_text())
        workdir = Path(sweep["workdir"])
        rows += [variant_row(workdir, v) for v in sweep["variants"] if v.get("status") == "done"]
    if not rows:
        print("no finished variant in", ", ".join(map(str, args.sweeps)))
        return 1
    head = list(rows[0])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in head) + " |")
    low_derived = min(r["heal3_derived"] for r in rows)
    low_guided = min(r["heal2_answer_guided"] for r in rows)
    print(
        f"minimum over {len(rows)} runs: {low_derived} derived repairs in heal-3, "
        f"{low_guided} answer-guided samples in heal-2"
    )
    return int(low_derived < args.min_derived or low_guided < args.min_guided)


if __name__ == "__main__":
    sys.exit(main())
