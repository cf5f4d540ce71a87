"""What several report sections share: progress lines, "not run yet" notes, the PACE buckets of
the run's problems, and lookups in a stage's recorded config."""

from __future__ import annotations

from heal_batch.report.collect import RunData


def progress(data: RunData, *stages: str) -> list[str]:
    """A note for stages still running: the section covers finished tasks only."""
    notes = []
    for name in stages:
        run = data.stages.get(name)
        if run and run.done < run.tasks:
            notes.append(
                f"{name}: {run.done}/{run.tasks} tasks done; this section covers those only."
            )
    return notes


def unavailable(data: RunData, section: str, what: str) -> list[str]:
    if section in data.errors:
        return [f"Could not read {section} data: {data.errors[section]}"]
    return [f"Not run yet: {what}."]


def pace_thresholds(data: RunData):
    """PaceConfig of the curriculum run when it has one, else the defaults."""
    from heal_batch.method.pace import PaceConfig

    config = data.stages["curriculum"].config if "curriculum" in data.stages else {}
    found = find_mapping(config, "easy_min_pass_rate")
    keys = ("easy_min_pass_rate", "corner_max_correct")
    return PaceConfig(**{k: found[k] for k in keys if k in found}) if found else PaceConfig()


def find_mapping(value, key: str) -> dict | None:
    if isinstance(value, dict):
        if key in value:
            return value
        for child in value.values():
            if (found := find_mapping(child, key)) is not None:
                return found
    return None


def problem_buckets(data: RunData) -> dict[str, str]:
    from heal_batch.method.pace import bucket

    pace = pace_thresholds(data)
    return {pid: bucket(c, k, pace) for pid, (c, k) in data.problems.outcomes.items()}
