"""heal-batch installed from its wheel, away from the checkout, and the resource search path.

The slow test builds the wheel, installs it into a fresh venv (``--system-site-packages``, so torch
and friends come from this environment) and runs the CLI from a folder outside the checkout: the
installed package must be the one imported, and the lm-eval tasks and cluster profiles must
resolve to the copies inside it (heal_batch/resources.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from setuptools import find_packages

from heal_batch.resources import PROFILES_ENV, profile_dirs, resource_dir

REPO = Path(__file__).resolve().parents[1]
# What the wheel build must not see: build/ leftovers would slip stale modules into the wheel.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "build", "dist", "runs", ".venv", "*.egg-info", "__pycache__", ".*_cache"
)
PROBE = """
import json, heal_batch
from heal_batch.evaluation.harness import TASKS_DIR
from heal_batch.executors.slurm.profiles import resolve_profile_path
from heal_batch.stages.evaluate import write_arith
from lm_eval.tasks import TaskManager

write_arith("data", count=3, seed=0)
manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                      metadata={"data_dir": "data"})
task = manager.load(["heal_arith_greedy"])["tasks"]["heal_arith_greedy"]
print(json.dumps({"package": heal_batch.__file__, "tasks": str(TASKS_DIR),
                  "profile": str(resolve_profile_path("local").resolve()),
                  "docs": len(task.test_docs())}))
"""


def test_pyproject_lists_every_package():
    """The package list in pyproject.toml is explicit (for the bundled folders): none forgotten."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = set(find_packages(str(REPO), include=["heal_batch*"])) - set(setuptools["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    for package, folder in setuptools["package-dir"].items():
        assert resource_dir(package.rsplit(".", 1)[1]) == REPO / folder


def test_profile_search_path_order(tmp_path, monkeypatch):
    site, other = tmp_path / "site", tmp_path / "other"
    monkeypatch.setenv(PROFILES_ENV, f"{site}{os.pathsep}{other}")
    bundled = resource_dir("profiles")
    assert profile_dirs() == [site, other, Path("slurm/profiles"), bundled]
    monkeypatch.delenv(PROFILES_ENV)
    assert profile_dirs() == [Path("slurm/profiles"), bundled]
    with pytest.raises(ValueError, match="valid: eval, profiles"):
        resource_dir("schemas")


def test_a_site_profile_shadows_the_bundled_one(tmp_path, monkeypatch):
    from heal_batch.executors.slurm.profiles import ProfileError, load_profile

    (tmp_path / "local.yaml").write_text("partition: site\n")
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert load_profile("local").partition == "site"
    with pytest.raises(ProfileError, match=f"known: .*local.*{PROFILES_ENV}"):
        load_profile("no-such-cluster")


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(tmp_path):
    """About 10 s: build, install, `run --dry_run`, `stage ingest`, then resolve the resources."""
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        tmp_path,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cli, config, workdir = env_dir / "bin" / "heal-batch", REPO / "jobs/demo.yaml", tmp_path / "w"
    _run([cli, "run", "--config", config, "--dry_run", "true", "--workdir", workdir], outside)
    _run(
        [
            cli,
            "run",
            "--config",
            config,
            "--dry_run",
            "true",
            "--workdir",
            workdir,
            "--executor",
            "slurm",
            "--cluster",
            "local",
        ],
        outside,
    )
    _run([cli, "stage", "ingest", "--config", config, "--workdir", workdir], outside)
    assert list((workdir / "manifests" / "ingest").glob("*.json"))

    found = json.loads(_run([python, "-c", PROBE], outside).splitlines()[-1])
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], outside
        ).strip()
    ).resolve()
    assert Path(found["package"]).resolve().is_relative_to(site), found
    assert Path(found["tasks"]) == site / "heal_batch" / "bundled" / "eval", found
    assert Path(found["profile"]) == site / "heal_batch" / "bundled" / "profiles" / "local.yaml"
    assert found["docs"] == 3


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the working tree (the build writes build/ into its source)."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("heal_batch-*.whl")
    return wheel


def _run(command: list, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in (PROFILES_ENV, "PYTHONPATH")}
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
