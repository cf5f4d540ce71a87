"""Slurm resources for a cluster, read from `slurm/profiles/<name>.yaml`.

Input: a YAML file whose keys are the fields of `ClusterProfile` (all optional; `name` defaults
to the file's stem). Output: a frozen `ClusterProfile` that gives the same resources two ways,
as keyword arguments for `submitit.AutoExecutor(...).update_parameters(...)` and as `#SBATCH`
lines for the plain-sbatch path and `--dry-run`.

    partition: gpu
    time_min: 240
    gpus_per_node: 1
    python: apptainer exec --nv /shared/images/heal.sif python  # every task in a container
    per_stage:
      train: {nodes: 2, gpus_per_node: 4}

    profile = load_profile("example-gpu").for_stage("train")
    executor.update_parameters(**profile.submitit_parameters())

`per_stage` maps a stage name to overrides; `for_stage` applies them: `additional` is merged key
by key, every other key is replaced. This module imports only the standard library (and PyYAML
inside `load_profile`), so the CLI can use it at startup.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal_batch.executors.slurm.profile_checks import ProfileError, validated
from heal_batch.pipeline.contract import index_ranges
from heal_batch.resources import PROFILES_ENV, profile_dirs

__all__ = ["ClusterProfile", "ProfileError", "load_profile", "query_max_array_size"]

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize
TRAIN_GROUP = "train"  # a per_stage key that applies to every train-* stage


@dataclass(frozen=True)
class ClusterProfile:
    """Slurm resources for one cluster (and, via `per_stage`, for each stage on it).

    Args:
        name: Profile name (the YAML file's stem unless set).
        partition: Slurm partition (`--partition`); None uses the cluster's default.
        account: Slurm account to charge (`--account`).
        qos: Quality of service (`--qos`).
        time_min: Wall-clock limit per array task, in minutes (`--time`).
        mem_gb: Memory per node in GB (`--mem`); None uses the cluster's default.
        cpus_per_task: CPUs per task (`--cpus-per-task`).
        gpus_per_node: GPUs per node (`--gpus-per-node`); 0 asks for none.
        nodes: Nodes per array task (`--nodes`); above 1 only for multi-node training.
        tasks_per_node: Tasks per node (`--ntasks-per-node`), e.g. one per GPU for training.
        array_parallelism: Most array tasks running at once (the `%N` of `--array`).
        max_requeues: How often a task that hits its time limit is requeued before it counts as
            failed (submitit's `max_num_timeout`; preemptions do not count). Each requeue resumes
            from the task's last saved chunk or checkpoint.
        array_size_limit: Most elements in one array job (the cluster's MaxArraySize);
            None asks `scontrol show config` (see `max_array_size()`).
        constraint: Node features (`--constraint`), e.g. "a100|h100".
        exclude: Nodes to avoid (`--exclude`).
        setup: Shell lines run before the task, e.g. `module load cuda/12.4`.
        additional: Extra sbatch options without the dashes, e.g. {"gres": "gpu:4"};
            the value `true` writes a bare flag such as `--exclusive`.
        python: Shell command that runs Python for each task, e.g.
            `apptainer exec --nv /shared/heal.sif python` to run tasks in a container
            (submitit's `python`); None runs the Python that submits.
        srun_args: Extra arguments for the `srun` that starts each task, e.g.
            ["--container-image=/shared/heal.sqsh"] for pyxis/enroot (submitit's `srun_args`).
        per_stage: Overrides per stage name, e.g. {"train": {"nodes": 2}}.
    """

    name: str = "default"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    mem_gb: float | None = None
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    nodes: int = 1
    tasks_per_node: int = 1
    array_parallelism: int = 64
    max_requeues: int = 3
    array_size_limit: int | None = None
    constraint: str | None = None
    exclude: str | None = None
    setup: list[str] = field(default_factory=list)
    additional: dict[str, str | bool] = field(default_factory=dict)
    python: str | None = None
    srun_args: list[str] = field(default_factory=list)
    per_stage: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_stage(self, stage: str) -> ClusterProfile:
        """This profile with the stage's overrides applied (unchanged if the stage has none).

        A ``train-*`` stage takes ``per_stage.train`` (every training stage) and then its own
        entry, so ``train-baselines: {time_min: 60}`` refines a shared ``train`` entry.
        """
        keys = (TRAIN_GROUP, stage) if stage.startswith(TRAIN_GROUP + "-") else (stage,)
        entries = [self.per_stage.get(key, {}) for key in keys]
        overrides = {k: v for e in entries for k, v in e.items() if k != "additional"}
        additional = {k: v for e in entries for k, v in (e.get("additional") or {}).items()}
        if additional:
            overrides["additional"] = {**self.additional, **additional}
        return dataclasses.replace(self, **overrides, per_stage={})

    def executor_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `submitit.AutoExecutor(folder, cluster="slurm", ...)` itself."""
        arguments: dict[str, Any] = {"slurm_max_num_timeout": self.max_requeues}
        if self.python is not None:
            arguments["slurm_python"] = self.python
        return arguments

    def submitit_parameters(self) -> dict[str, Any]:
        """Keyword arguments for `submitit.AutoExecutor(...).update_parameters(...)`."""
        params: dict[str, Any] = {
            "slurm_partition": self.partition,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "timeout_min": self.time_min,
            "mem_gb": self.mem_gb,
            "cpus_per_task": self.cpus_per_task,
            "gpus_per_node": self.gpus_per_node or None,  # 0: leave the option out
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_constraint": self.constraint,
            "slurm_exclude": self.exclude,
            "slurm_setup": list(self.setup) or None,
            "slurm_additional_parameters": dict(self.additional) or None,
            "slurm_srun_args": list(self.srun_args) or None,
        }
        return {key: value for key, value in params.items() if value is not None}

    def sbatch_lines(self) -> list[str]:
        """`#SBATCH` lines for the same resources as `submitit_parameters` (no `--array`)."""
        options: dict[str, Any] = {
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "time": self.time_min,
            "mem": _mem_option(self.mem_gb) if self.mem_gb is not None else None,
            "cpus-per-task": self.cpus_per_task,
            "gpus-per-node": self.gpus_per_node or None,
            "nodes": self.nodes,
            "ntasks-per-node": self.tasks_per_node,
            "constraint": self.constraint,
            "exclude": self.exclude,
        }
        options.update({key.replace("_", "-"): value for key, value in self.additional.items()})
        return [_sbatch_flag(key, value) for key, value in options.items() if value is not None]

    def python_command(self) -> str:
        """The shell words that run Python for a task: `python`, else this interpreter."""
        return self.python if self.python is not None else shlex.quote(sys.executable)

    def srun_prefix(self) -> str:
        """`srun` and `srun_args`, quoted, with a trailing space (as submitit writes them)."""
        return shlex.join(["srun", *self.srun_args]) + " "

    def launch_lines(self) -> list[str]:
        """Comment lines for a preview: the container command and srun arguments, when set."""
        lines = [f"# python: {self.python}"] if self.python is not None else []
        if self.srun_args:
            lines.append(f"# srun args: {shlex.join(self.srun_args)}")
        return lines

    def max_array_size(self) -> int:
        """Most elements one array job may have: `array_size_limit`, else the cluster's."""
        if self.array_size_limit is not None:
            return self.array_size_limit
        return query_max_array_size()

    def array_option(self, indices: Iterable[int]) -> str:
        """The `--array` value for these task indices, e.g. "0-3,7%64"."""
        spec = index_ranges(indices)
        if not spec:
            raise ValueError("array_option needs at least one task index")
        return f"{spec}%{self.array_parallelism}"


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ClusterProfile)]


def _per_stage_keys() -> list[str]:
    """Stage names, plus ``train`` (every train-* stage)."""
    from heal_batch.pipeline.registry import STAGES  # light: stage modules import nothing heavy

    return [*STAGES, TRAIN_GROUP]


def load_profile(path_or_name: str | Path) -> ClusterProfile:
    """Read and validate a profile: a path to a YAML file, or a bare name (see `profile_dirs`).

    Raises ProfileError naming the file and key for unknown keys and wrong types.
    """
    import yaml  # PyYAML: light, but only needed here

    path = resolve_profile_path(path_or_name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of profile keys, got {type(data).__name__}")
    data = validated(path, data, "", _field_names())
    per_stage = data.get("per_stage") or {}
    if not isinstance(per_stage, dict):
        raise ProfileError(f"{path}: 'per_stage' must map stage names to overrides")
    valid_stages = _per_stage_keys()
    for stage, overrides in per_stage.items():
        if stage not in valid_stages:
            raise ProfileError(
                f"{path}: per_stage.{stage}: no such stage; valid: {', '.join(valid_stages)}"
            )
        if not isinstance(overrides, dict):
            raise ProfileError(f"{path}: per_stage.{stage} must be a mapping of profile keys")
        nested = [k for k in _field_names() if k not in ("name", "per_stage")]
        per_stage[stage] = validated(path, overrides, f"per_stage.{stage}.", nested)
    data["per_stage"] = per_stage
    data.setdefault("name", path.stem)
    return ClusterProfile(**data)


def resolve_profile_path(path_or_name: str | Path) -> Path:
    """A YAML path as given, or `<name>.yaml` in the first folder of `profile_dirs()` that has it.

    The search path: `$HEAL_BATCH_PROFILES`, `./slurm/profiles`, then the bundled profiles.
    """
    text = str(path_or_name)
    if "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ProfileError(f"cluster profile {path} does not exist")
        return path
    folders = profile_dirs()
    for folder in folders:
        if (folder / f"{text}.yaml").is_file():
            return folder / f"{text}.yaml"
    known = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
    raise ProfileError(
        f"no cluster profile named {text!r} in {', '.join(map(str, folders))}; "
        f"known: {', '.join(known) or 'none'} (pass a path to a YAML file, or add a folder "
        f"to ${PROFILES_ENV})"
    )


def query_max_array_size() -> int:
    """`MaxArraySize` from `scontrol show config` (array indices run 0..N-1).

    Slurm's default 1001 when scontrol is not on PATH, fails, or does not say.
    """
    if shutil.which("scontrol") is None:
        return DEFAULT_MAX_ARRAY_SIZE
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return DEFAULT_MAX_ARRAY_SIZE
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found.group(1)) if found else DEFAULT_MAX_ARRAY_SIZE


# ------------------------------------------------------------------ sbatch formatting


def _mem_option(mem_gb: float) -> str:
    """The `--mem` value submitit writes for `mem_gb` (whole GB, else MB)."""
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"


def _sbatch_flag(key: str, value: Any) -> str:
    if value is True:
        return f"#SBATCH --{key}"
    return f"#SBATCH --{key}={shlex.quote(str(value))}"
