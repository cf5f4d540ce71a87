import pytest

from heal_batch.backends.base import (
    GenerationParams,
    Generator,
    Sample,
    SampleRequest,
    as_requests,
    prompt_seed,
    render_chat,
)


def test_generation_params_validate_and_name_the_field():
    with pytest.raises(ValueError, match="top_p=0"):
        GenerationParams(top_p=0)
    with pytest.raises(ValueError, match="n=0"):
        GenerationParams(n=0)
    assert GenerationParams(stop=["\n\n"]).stop == ("\n\n",)  # lists become hashable tuples


def test_plain_prompts_get_stable_seeds_independent_of_position():
    params = GenerationParams(n=3, seed=11)
    a = as_requests(["x", "y"], params)
    b = as_requests(["y", "x", SampleRequest("z", 5, 2)], params)
    assert a[0] == b[1] and a[1] == b[0]
    assert a[0].n == 3 and a[0].seed == prompt_seed(11, "x") != prompt_seed(12, "x")
    assert b[2] == SampleRequest("z", 5, 2)
    with pytest.raises(TypeError):
        as_requests([3], params)


def test_render_chat_with_examples_and_assistant_prefix(tiny_tok):
    text = render_chat(tiny_tok, "SYS", "Q2", assistant_prefix="Step 1:", examples=[("Q1", "A1")])
    assert text.index("SYS") < text.index("Q1") < text.index("A1") < text.index("Q2")
    assert text.endswith("<|im_start|>assistant\nStep 1:")  # mid-turn: no end-of-turn after it
    plain = render_chat(tiny_tok, None, "Q2")
    assert plain.endswith("<|im_start|>assistant\n") and "system" not in plain


def test_sample_to_dict_and_protocol():
    s = Sample("t", [1], [-0.1], [0.2], "exact", "stop", 3, [0])
    assert s.to_dict()["entropy_method"] == "exact"

    class Fake:
        tokenizer = None

        def generate(self, prompts, params):
            return []

        def describe(self):
            return {}

    assert isinstance(Fake(), Generator)
