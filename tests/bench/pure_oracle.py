"""PURE's rules against the oracle on one run folder's score records; prints a table.

    python tests/bench/pure_oracle.py runs/demo [SCORE_RUN_KEY]

For each setting (the paper's rules, ours, each reference), ``pure.decide`` is applied to the run's
scored candidates per kind, exactly as curriculum pools them, and set against the oracle labels
score recorded (built-in problems only): candidates, derived, kept, derived among the kept,
precision (derived among kept) and recall (kept among derived). Nothing is re-scored: the ratios
come from the latest score manifest of the folder, or the one of the given run key (a sweep's
folder holds one per variant: ``sweeps/<name>.json`` lists them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SETTINGS = {  # name -> (reference, PureConfig overrides)
    "paper: lambda + natural q95": (
        "natural",
        {"answer_reference_percentile": None, "min_reasoning_tokens": 0},
    ),
    "lambda + natural q95 + our two rules": ("natural", {}),
    "lambda + natural q99 + our two rules": ("natural", {"reference_percentile": 99}),
    "lambda + guided q95 + our two rules": ("guided", {}),
    "lambda + our two rules, no R reference": ("natural", {"reference_percentile": None}),
}


def score_records(workdir: Path, key: str | None = None) -> list[dict]:
    from heal_batch.store.layout import Layout
    from heal_batch.store.shards import read_records, shard_path

    manifests = sorted(
        (workdir / "manifests" / "score").glob(f"{key or '*'}.json"),
        key=lambda f: f.stat().st_mtime,
    )
    if not manifests:
        raise SystemExit(f"{workdir}: no score manifest (run the score stage first)")
    store = Layout(str(workdir)).store
    tasks = json.loads(manifests[-1].read_text())["tasks"]
    outputs = [t["output"] for t in tasks if t.get("output")]
    return [r for a in outputs for r in read_records(shard_path(store, a))]


def compare(records: list[dict]) -> list[tuple[str, str, dict]]:
    from heal_batch.method.oracle import pure_vs_oracle
    from heal_batch.method.pure import PureConfig, ScoredCandidate, decide

    refs = {
        "natural": [r["pure"] for r in records if r["kind"] == "reference"],
        "guided": [r["pure"] for r in records if r["kind"] == "guided_reference"],
    }
    rows = []
    for name, (reference, overrides) in SETTINGS.items():
        cfg = PureConfig(**overrides)
        ratios = [p["ratio"] for p in refs[reference] if p.get("ratio") is not None]
        nlls = [p["answer_nll"] for p in refs[reference] if p.get("answer_nll") is not None]
        for kind in ("repair", "answer_guided"):
            pool = [r for r in records if r["kind"] == kind and "oracle" in r]
            scored = [
                ScoredCandidate(
                    r["id"],
                    r["pure"]["ratio"],
                    r["pure"]["max_step_ppl"],
                    r["pure"]["answer_nll"],
                    r["pure"]["unscored_reason"],
                    r["pure"]["reasoning_tokens"],
                )
                for r in pool
            ]
            decisions = decide(scored, ratios, cfg, nlls)
            pairs = ((d.reason, r["oracle"]) for d, r in zip(decisions, pool, strict=True))
            rows.append((name, kind, pure_vs_oracle(pairs)))
    return rows


def main() -> None:
    from heal_batch.method.oracle import precision_recall

    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
    records = score_records(workdir, sys.argv[2] if len(sys.argv) > 2 else None)
    n_refs = {k: sum(r["kind"] == k for r in records) for k in ("reference", "guided_reference")}
    print(f"{workdir}: {n_refs['reference']} natural, {n_refs['guided_reference']} guided refs")
    print("| rules | kind | candidates | derived | kept | kept derived | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kind, c in compare(records):
        p, r = precision_recall(c)
        fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        print(
            f"| {name} | {kind} | {c['oracle_candidates']} | {c.get('oracle_derived', 0)} |"
            f" {c['oracle_kept']} | {c['oracle_kept_derived']} | {fmt(p)} | {fmt(r)} |"
        )


if __name__ == "__main__":
    main()
