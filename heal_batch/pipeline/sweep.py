"""Ablations as one command: every variant of a grid (x seeds) in one run folder, sharing upstream.

A variant is the base config plus overrides (``repair.gear.strategy=random``, ``generate.seed=1``).
Variants run one after another through :func:`heal_batch.pipeline.launch.launch`, each waiting for
its jobs (Slurm too), in the same work directory: a stage whose run key a variant shares with an
earlier one (every stage upstream of the changed fields) is found done and not run again. ``refs/``
point at the last variant's runs; ``sweeps/<name>.json`` records every variant's overrides, run
key per stage and which stages it ran, so :func:`collect` finds each variant's manifests without
refs. At the end ``report/sweep.md`` and ``report/sweep.json`` hold the comparison
(:mod:`heal_batch.pipeline.sweep_table`).

    heal-batch sweep --config jobs/demo.yaml --grid 'repair.gear.strategy=[entropy-surge,start]' \\
        --seeds 0,1 --executor local
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import write_text_atomic
from heal_batch.store.layout import Layout

NOT_IN_GRID = ("workdir", "executor", "cluster", "local_parallelism", "timeout_min")
EVAL_KEYS = (
    "checkpoint",
    "benchmark",
    "greedy_acc",
    "greedy_acc_stderr",
    "avg_at_n",
    "avg_at_n_ci",
    "n_samples",
    "correct_counts",
    "pass_at_k",
    "pass_at_k_ci",
    "seeds",
    "num_problems",
)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``'KEY=[a,b]'`` -> (KEY, [a, b]); values are read as YAML (numbers, booleans, strings)."""
    import yaml

    key, sep, values = text.partition("=")
    key = key.strip().removeprefix("--")
    try:
        parsed = yaml.safe_load(values) if sep else None
    except yaml.YAMLError:
        parsed = None
    if not key or not isinstance(parsed, list) or not parsed:
        raise ValueError(
            f"--grid {text!r}: expected KEY=[v1,v2,...], e.g. "
            "'repair.gear.strategy=[entropy-surge,random]'"
        )
    if key in NOT_IN_GRID:
        raise ValueError(
            f"--grid {key}: where and how to run is one setting for the whole sweep; "
            "give it as a plain flag"
        )
    return key, parsed


def seed_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every ``seed`` field in the config (generate.seed, repair.seed, ...)."""
    found = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            found += seed_keys(value, f"{prefix}{f.name}.")
        elif f.name == "seed":
            found.append(prefix + f.name)
    return found


def make_variants(
    grids: list[tuple[str, list[Any]]], seeds: list[int] | None, seed_fields: list[str]
) -> list[Variant]:
    """The cartesian product of the grids, times the seeds (each seed sets every seed field)."""
    axes = [[{key: v} for v in values] for key, values in grids]
    if seeds:
        axes.append([{**dict.fromkeys(seed_fields, s), "_seed": s} for s in seeds])
    variants = []
    for combo in itertools.product(*axes) if axes else [()]:
        overrides = {k: v for part in combo for k, v in part.items()}
        seed = overrides.pop("_seed", None)
        parts = [
            f"{k.rsplit('.', 1)[-1]}={v}"
            for part in combo
            for k, v in part.items()
            if k != "_seed" and k not in seed_fields
        ]
        parts += [] if seed is None else [f"seed={seed}"]
        variants.append(Variant(",".join(parts) or "base", overrides))
    return variants


def run_sweep(
    name: str,
    variants: list[Variant],
    build: Callable[[dict[str, Any]], Any],
    run_one: Callable[[Any], Any],
    echo=print,
) -> tuple[Path, bool]:
    """Run the variants in order; (the sweep record's path, whether every variant succeeded).

    ``build(overrides)`` gives a variant's config, ``run_one(cfg)`` launches it and waits (a
    :class:`~heal_batch.pipeline.launch.LaunchResult`). The record is rewritten after each
    variant, so a stopped sweep still says what ran; a failed variant stops the sweep.
    """
    configs = [build(v.overrides) for v in variants]  # every override checked before running
    layout = Layout(Path(configs[0].workdir))
    record: dict[str, Any] = {"name": name, "workdir": str(layout.workdir), "variants": []}
    path = layout.workdir / "sweeps" / f"{name}.json"
    ok = True
    for variant, cfg in zip(variants, configs, strict=True):
        echo(f"== variant {variant.name}: {json.dumps(variant.overrides)}")
        result = run_one(cfg)
        failed = {**result.failed, **result.blocked}
        record["variants"].append(
            {
                "name": variant.name,
                "overrides": variant.overrides,
                "run_keys": {p.name: p.key for p in result.plans},
                "ran": [p.name for p in result.plans if p.todo],
                "status": "failed" if failed else "done",
            }
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")
        if failed:
            echo(f"variant {variant.name} failed ({', '.join(failed)}): sweep stopped")
            ok = False
            break
    return path, ok


def write_comparison(record_path: Path) -> Path:
    """``report/sweep.md`` and ``report/sweep.json`` of a sweep record; returns the markdown."""
    from heal_batch.pipeline.sweep_table import render_markdown, sweep_table

    record = json.loads(record_path.read_text())
    layout = Layout(Path(record["workdir"]))
    table = sweep_table(collect(layout, record))
    out = layout.workdir / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sweep.json", json.dumps({**table, "sweep": record}, indent=2) + "\n")
    md = out / "sweep.md"
    write_text_atomic(md, render_markdown(table, f"Sweep {record['name']}"))
    return md


def collect(layout: Layout, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each variant's repair counters, curriculum counters per set and evaluate records, read
    from the manifests its run keys name."""
    return [
        {"name": v["name"], "overrides": v["overrides"], **_stage_data(layout, v["run_keys"])}
        for v in record["variants"]
    ]


def _stage_data(layout: Layout, keys: dict[str, str]) -> dict[str, Any]:
    from heal_batch.stages.curriculum.sets import set_specs
    from heal_batch.store.shards import read_records, shard_path

    data: dict[str, Any] = {}
    repair = _done_tasks(layout, "repair", keys.get("repair"))
    if repair is not None:
        data["repair"] = dict(sum((Counter(t.counters) for t in repair[1]), Counter()))
    curriculum = _done_tasks(layout, "curriculum", keys.get("curriculum"))
    if curriculum is not None:
        names = [s.name for s in set_specs(curriculum[0].config["config"]["baselines"])]
        data["sets"] = {names[t.index]: dict(t.counters) for t in curriculum[1]}
    evaluate = _done_tasks(layout, "evaluate", keys.get("evaluate"))
    if evaluate is not None:
        data["evaluate"] = [
            {k: r.get(k) for k in EVAL_KEYS}
            for t in evaluate[1]
            for r in read_records(shard_path(layout.store, t.output))
        ]
    return data


def _done_tasks(layout: Layout, stage: str, key: str | None):
    """(manifest, its done tasks) of a stage run, None when it has no manifest."""
    from heal_batch.store.manifests import load_manifest, refresh

    path = layout.manifest(stage, key) if key else None
    if path is None or not path.is_file():
        return None
    manifest = load_manifest(path)
    if not manifest.sealed:
        refresh(layout, manifest)  # in memory only
    return manifest, [t for t in manifest.tasks if t.state == "done" and t.output]
