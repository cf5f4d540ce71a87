"""Plain sbatch: write the sbatch scripts of a whole DAG to a folder instead of submitting.

For clusters where submitit cannot run on the login node, or users who script Slurm themselves:

    heal-batch run --config my.yaml --executor slurm --cluster mycluster --sbatch_dir runs/x/sbatch
    bash runs/x/sbatch/submit.sh          # sbatch each stage with --dependency=afterany on the last

Each ``NN-<stage>.sbatch`` is an array over the stage's unfinished task indices that runs
``heal-batch stage <stage> --config <resolved config> --task $SLURM_ARRAY_TASK_ID`` with the
profile's ``python`` command (e.g. inside a container) and ``srun_args``: the same receipts,
manifests and reruns as the submitit path.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from heal_batch.store.runkeys import to_plain


def write_scripts(cfg, plans, profile, folder: Path) -> Path:
    """Write ``config.yaml``, one script per stage with work to do, and ``submit.sh``.

    Returns the path of ``submit.sh``.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    resolved = to_plain(cfg)
    resolved["workdir"] = str(Path(cfg.workdir).resolve())
    config.write_text(
        "# Resolved pipeline config written by heal-batch --sbatch_dir\n"
        + yaml.safe_dump(resolved, sort_keys=False)
    )
    submit = [
        "#!/bin/bash",
        "# Submits the DAG; each stage waits for the stages it reads.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(folder))}",
    ]
    job_vars: dict[str, str] = {}
    for number, p in enumerate(plans):
        if not p.todo:
            continue
        script = folder / f"{number:02d}-{p.name}.sbatch"
        script.write_text(_script(p, profile.for_stage(p.name), config, resolved["workdir"]))
        var = f"JOB_{number:02d}"
        waits = [f"${job_vars[u]}" for u in p.stage.upstream if u in job_vars]
        dependency = (
            f"--dependency=afterany:{':'.join(waits)} --kill-on-invalid-dep=yes " if waits else ""
        )
        submit.append(f'{var}=$(sbatch --parsable {dependency}{script.name} | cut -d";" -f1)')
        submit.append(f'echo "{p.name}: job ${var}"')
        job_vars[p.name] = var
    path = folder / "submit.sh"
    path.write_text("\n".join(submit) + "\n")
    path.chmod(0o755)
    return path


def _script(plan, profile, config: Path, workdir: str) -> str:
    logs = Path(workdir) / "runs" / plan.name / plan.key / "logs"
    distributed = plan.stage.resources == "distributed"
    indices = [t.index for t in plan.todo]
    lines = [
        "#!/bin/bash",
        f"# heal-batch stage {plan.name} (run {plan.key[:12]}): tasks {indices}",
        f"#SBATCH --job-name=heal-{plan.name}",
        *profile.sbatch_lines(),
    ]
    if distributed:  # one job per task would need a script each; a single task is the common case
        lines.append(f"#SBATCH --output={logs}/%j.out")
        task = str(plan.todo[0].index)
    else:
        lines += [
            f"#SBATCH --array={profile.array_option(t.index for t in plan.todo)}",
            f"#SBATCH --output={logs}/%A_%a.out",
        ]
        task = "$SLURM_ARRAY_TASK_ID"
    # Distributed stages need srun to start their ranks; array tasks go through srun only when the
    # profile has srun_args (e.g. pyxis' --container-image), as submitit always does.
    launcher = profile.srun_prefix() if distributed or profile.srun_args else ""
    logs.mkdir(parents=True, exist_ok=True)  # Slurm opens --output before the script runs
    lines += [
        "set -euo pipefail",
        *profile.setup,
        (
            f"{launcher}{profile.python_command()} -m heal_batch.cli stage {plan.name} "
            f"--config {shlex.quote(str(config))} --task {task}"
        ),
    ]
    return "\n".join(lines) + "\n"
