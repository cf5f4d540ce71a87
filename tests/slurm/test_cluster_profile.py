"""Cluster profiles: every YAML under slurm/profiles validates, the two outputs (submitit kwargs,
#SBATCH lines) agree with each other, and mistakes name the file and key."""

from __future__ import annotations

import os

import pytest
import yaml

from heal_batch.executors.slurm import profiles as cluster_profile
from heal_batch.executors.slurm.profiles import ClusterProfile, ProfileError, load_profile
from tests.fixtures.slurm import REPO

PROFILES = sorted((REPO / "slurm" / "profiles").glob("*.yaml"))


def test_the_expected_profiles_exist():
    assert {path.stem for path in PROFILES} >= {"local", "example-gpu", "example-cpu"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_profile_loads_and_opens_with_a_comment(path):
    profile = load_profile(path)

    assert profile.name == path.stem
    assert path.read_text().startswith("# ")
    for stage in profile.per_stage:
        assert profile.for_stage(stage).per_stage == {}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_submitit_accepts_the_parameters_and_writes_the_same_sbatch_lines(
    path, tmp_path, monkeypatch
):
    import submitit

    _pretend_srun_exists(tmp_path, monkeypatch)
    for stage in ["none", *load_profile(path).per_stage]:
        profile = load_profile(path).for_stage(stage)
        executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
        executor.update_parameters(**profile.submitit_parameters())
        text = executor._executor._make_submission_file_text("true", "uid")

        submitit_lines = set(text.splitlines())
        assert set(profile.sbatch_lines()) <= submitit_lines, stage
        assert all(line in submitit_lines for line in profile.setup)


def _pretend_srun_exists(tmp_path, monkeypatch):
    """submitit's SlurmExecutor refuses to start without `srun`; nothing is submitted here."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '')}")


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_per_stage_keys_are_stage_names(path):
    """for_stage matches names exactly: a key like "train" would silently apply to no stage."""
    from heal_batch.pipeline.registry import STAGES

    assert set(load_profile(path).per_stage) <= set(STAGES)


JOBS = sorted((REPO / "jobs").glob("*.yaml"))
JOBS_WITH_CLUSTER = [job for job in JOBS if "cluster" in yaml.safe_load(job.read_text())]


@pytest.mark.parametrize("job", JOBS_WITH_CLUSTER, ids=lambda p: p.stem)
def test_a_job_and_its_profile_agree_on_gpus(job):
    """vLLM stages get teacher.tensor_parallel GPUs; training runs one rank per GPU."""
    cfg = yaml.safe_load(job.read_text())
    profile = load_profile(cfg["cluster"])  # a bare name: resolves to slurm/profiles/ of this repo
    teacher = cfg.get("teacher", {})
    if teacher.get("backend") == "vllm":
        engine_gpus = teacher.get("tensor_parallel", 1)
        for stage in ("generate", "repair"):
            assert profile.for_stage(stage).gpus_per_node == engine_gpus, stage
        assert profile.for_stage("score").gpus_per_node >= 1
    for stage in ("train-1", "train-2", "train-3", "train-baselines"):
        train = profile.for_stage(stage)
        assert train.gpus_per_node >= 1 and train.tasks_per_node == train.gpus_per_node, stage
    assert profile.for_stage("evaluate").gpus_per_node >= 1


def test_a_bare_name_resolves_to_the_repo_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no slurm/profiles here: falls back to the repo's

    assert load_profile("local").partition == "debug"


def test_per_stage_overrides_replace_keys_and_merge_additional():
    base = ClusterProfile(
        name="x",
        time_min=60,
        additional={"requeue": True, "mail-type": "FAIL"},
        per_stage={"train": {"nodes": 2, "gpus_per_node": 4, "additional": {"mail-type": "ALL"}}},
    )

    train = base.for_stage("train")

    assert (train.nodes, train.gpus_per_node, train.time_min) == (2, 4, 60)
    assert train.additional == {"requeue": True, "mail-type": "ALL"}
    assert base.for_stage("generate") == ClusterProfile(
        name="x", time_min=60, additional={"requeue": True, "mail-type": "FAIL"}
    )


def test_sbatch_lines_and_submitit_parameters_for_a_gpu_stage():
    profile = ClusterProfile(
        name="g", partition="gpu", account="lab", mem_gb=1.5, gpus_per_node=2, setup=["module x"]
    )

    assert profile.sbatch_lines() == [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=60",
        "#SBATCH --mem=1536MB",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
    ]
    params = profile.submitit_parameters()
    assert params["slurm_setup"] == ["module x"] and params["gpus_per_node"] == 2
    assert "slurm_qos" not in params and "slurm_additional_parameters" not in params
    assert "gpus_per_node" not in ClusterProfile().submitit_parameters()  # 0 GPUs: no option


def test_array_option_compresses_indices_and_caps_parallelism():
    profile = ClusterProfile(array_parallelism=8)

    assert profile.array_option([7, 0, 1, 2, 3, 9, 10, 3]) == "0-3,7,9-10%8"
    assert profile.array_option([5]) == "5%8"
    with pytest.raises(ValueError):
        profile.array_option([])


def test_unknown_key_names_the_file_and_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("partition: gpu\ngpus: 4\n")

    with pytest.raises(ProfileError) as err:
        load_profile(path)

    message = str(err.value)
    assert str(path) in message and "'gpus'" in message and "gpus_per_node" in message


def test_unknown_key_inside_per_stage_is_named_with_its_stage(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("per_stage:\n  train:\n    node: 2\n")

    with pytest.raises(ProfileError, match=r"bad.yaml: unknown key per_stage.train.'node'"):
        load_profile(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time_min: '60'", "time_min must be an integer >= 1"),
        ("gpus_per_node: -1", "gpus_per_node must be an integer >= 0"),
        ("max_requeues: 1.5", "max_requeues must be an integer >= 0"),
        ("mem_gb: true", "mem_gb must be a number > 0 or null"),
        ("setup: module load x", "setup must be a list of shell lines"),
        ("per_stage: {train: {name: t}}", "unknown key per_stage.train.'name'"),
        ("python: ''", "python must be a shell command that runs Python"),
        ("python: [apptainer, exec]", "python must be a shell command that runs Python"),
        ("srun_args: --container-image=x", "srun_args must be a list of srun arguments"),
        ("per_stage: {ingest: {srun_args: [1]}}", "per_stage.ingest.srun_args must be a list"),
        ("per_stage: {ingest: {pyhton: x}}", "unknown key per_stage.ingest.'pyhton'"),
        ("- a list", "expected a mapping"),
    ],
)
def test_wrong_types_are_reported(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")

    with pytest.raises(ProfileError, match=expected):
        load_profile(path)


def test_numbers_in_additional_become_strings(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("additional: {gpus-per-task: 1, exclusive: true}\n")

    assert load_profile(path).additional == {"gpus-per-task": "1", "exclusive": True}


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ProfileError, match="known: .*example-cpu.*local"):
        load_profile("no-such-cluster")


def test_max_array_size_prefers_the_profile_then_scontrol(monkeypatch):
    assert ClusterProfile(array_size_limit=500).max_array_size() == 500

    monkeypatch.setattr(cluster_profile.shutil, "which", lambda name: None)
    assert ClusterProfile().max_array_size() == 1001

    monkeypatch.setattr(cluster_profile.shutil, "which", lambda name: "/usr/bin/scontrol")
    config = "MaxArraySize            = 4001\nMaxJobCount = 10000\n"
    monkeypatch.setattr(
        cluster_profile.subprocess,
        "run",
        lambda *a, **k: type("Done", (), {"stdout": config})(),
    )
    assert ClusterProfile().max_array_size() == 4001


def test_importing_the_module_pulls_in_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, heal_batch.executors.slurm.profiles; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    for heavy in ("torch", "transformers", "submitit", "yaml", "polars"):
        assert f"'{heavy}'" not in out.stdout


def test_a_train_entry_applies_to_every_training_stage_and_own_entries_refine_it(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "partition: gpu\nadditional: {requeue: true}\nper_stage:\n"
        "  train: {nodes: 2, gpus_per_node: 4, additional: {exclusive: true}}\n"
        "  train-baselines: {nodes: 1}\n"
    )
    profile = load_profile(path)
    train2 = profile.for_stage("train-2")
    assert (train2.nodes, train2.gpus_per_node) == (2, 4)
    baselines = profile.for_stage("train-baselines")
    assert (baselines.nodes, baselines.gpus_per_node) == (1, 4)
    assert baselines.additional == {"requeue": True, "exclusive": True}
    assert profile.for_stage("generate").nodes == 1


def test_a_per_stage_key_that_names_no_stage_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("per_stage:\n  genrate: {time_min: 5}\n")
    expected = r"p.yaml: per_stage.genrate: no such stage; valid: ingest"
    with pytest.raises(ProfileError, match=expected):
        load_profile(path)


def test_max_requeues_reaches_submitits_executor_and_can_differ_per_stage(tmp_path, monkeypatch):
    import submitit

    _pretend_srun_exists(tmp_path, monkeypatch)
    path = tmp_path / "p.yaml"
    path.write_text("max_requeues: 7\nper_stage:\n  repair: {max_requeues: 0}\n")
    profile = load_profile(path)
    assert ClusterProfile().max_requeues == 3  # submitit's own default
    for stage, expected in (("generate", 7), ("repair", 0)):
        args = profile.for_stage(stage).executor_arguments()
        executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm", **args)
        assert executor._executor.max_num_timeout == expected


def test_python_and_srun_args_reach_submitit_and_can_differ_per_stage(tmp_path, monkeypatch):
    """`python` is submitit's executor argument, `srun_args` an sbatch-script parameter."""
    import submitit

    _pretend_srun_exists(tmp_path, monkeypatch)
    path = tmp_path / "p.yaml"
    path.write_text(
        "python: apptainer exec --nv /img.sif python\n"
        "srun_args: [--cpu-bind=cores]\n"
        "per_stage:\n"
        "  ingest: {python: apptainer exec /img.sif python}\n"
        "  train: {srun_args: ['--container-image=/img.sqsh', --container-mounts=/a:/a]}\n"
    )
    profile = load_profile(path)
    expected = {
        "generate": ("apptainer exec --nv /img.sif python", "--cpu-bind=cores"),
        "ingest": ("apptainer exec /img.sif python", "--cpu-bind=cores"),
        "train-2": (
            "apptainer exec --nv /img.sif python",
            "--container-image=/img.sqsh --container-mounts=/a:/a",  # replaced, not appended
        ),
    }
    for stage, (python, srun_args) in expected.items():
        staged = profile.for_stage(stage)
        executor = submitit.AutoExecutor(
            folder=tmp_path, cluster="slurm", **staged.executor_arguments()
        )
        executor.update_parameters(**staged.submitit_parameters())
        inner = executor._executor
        assert inner._submitit_command_str.startswith(f"{python} -u -m submitit"), stage
        text = inner._make_submission_file_text(inner._submitit_command_str, "uid")
        (srun_line,) = [line for line in text.splitlines() if line.startswith("srun ")]
        assert f" {srun_args} {python} -u -m submitit" in srun_line, (stage, srun_line)
        assert staged.python_command() == python
        assert staged.srun_prefix() == f"srun {srun_args} "


def test_without_python_tasks_run_this_interpreter_and_submitit_gets_no_extra_arguments():
    import shlex
    import sys

    profile = ClusterProfile()

    assert profile.python_command() == shlex.quote(sys.executable)
    assert "slurm_python" not in profile.executor_arguments()
    assert "slurm_srun_args" not in profile.submitit_parameters()
    assert profile.launch_lines() == [] and profile.srun_prefix() == "srun "


def test_the_apptainer_example_runs_gpu_stages_with_nv_and_cpu_stages_without():
    profile = load_profile(REPO / "slurm" / "profiles" / "example-apptainer.yaml")

    assert "--nv" in profile.for_stage("generate").python
    assert "--nv" in profile.for_stage("train-1").python
    assert "--nv" not in profile.for_stage("ingest").python
    assert profile.for_stage("ingest").python.startswith("apptainer exec")


def test_the_dry_run_preview_names_the_container_command_per_stage(tmp_path):
    from heal_batch.executors.slurm.executor import SlurmExecutor

    path = tmp_path / "p.yaml"
    path.write_text("python: run-in image python\nper_stage:\n  ingest: {srun_args: [--x=1]}\n")
    executor = SlurmExecutor(load_profile(path))

    expected = ["# python: run-in image python", "# srun args: --x=1"]
    assert executor.preview("ingest")[-2:] == expected
    assert executor.preview("score")[-1] == "# python: run-in image python"
    assert all(line.startswith("#SBATCH") for line in SlurmExecutor(ClusterProfile()).preview("x"))


@pytest.mark.parametrize(
    ("resources", "profile", "expected"),
    [
        ("cpu", ClusterProfile(), "{exe} -m heal_batch.cli stage s"),  # no srun: as before
        ("distributed", ClusterProfile(), "srun {exe} -m heal_batch.cli stage s"),
        ("cpu", ClusterProfile(python="img python"), "img python -m heal_batch.cli stage s"),
        (
            "cpu",
            ClusterProfile(python="img python", srun_args=["--container-image=a b"]),
            "srun '--container-image=a b' img python -m heal_batch.cli stage s",
        ),
    ],
)
def test_plain_sbatch_scripts_start_tasks_with_the_profiles_python_and_srun_args(
    tmp_path, resources, profile, expected
):
    import shlex
    import sys
    from types import SimpleNamespace

    from heal_batch.executors.slurm.sbatch import _script

    plan = SimpleNamespace(
        name="s",
        key="k" * 64,
        stage=SimpleNamespace(resources=resources),
        todo=[SimpleNamespace(index=0), SimpleNamespace(index=1)],
    )
    command = _script(plan, profile, tmp_path / "c.yaml", str(tmp_path)).splitlines()[-1]

    assert command.startswith(expected.format(exe=shlex.quote(sys.executable)) + " --config ")
