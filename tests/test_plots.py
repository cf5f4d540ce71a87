"""plot_entropy writes a PNG for a trajectory, with or without a breakpoint."""

import pytest

from heal_batch.method.gear import GearConfig
from heal_batch.method.steps import offsets_from_tokens
from heal_batch.method.trajectory import breakpoint_dict, breakpoint_of
from heal_batch.records import encode_floats
from heal_batch.report.entropy_plot import plot_entropy


def record():
    tokens = [
        "We ",
        "read.\n\n",
        "We ",
        "add.\n\n",
        "Oops ",
        "times.\n\n",
        "So ",
        "\\boxed{9}.",
    ] + [" ok"] * 8
    text, offsets = offsets_from_tokens(tokens)
    ents = [0.5, 0.5, 0.5, 0.5, 3.0, 3.0] + [0.4] * 10
    return {
        "id": "q#s0",
        "completion": text,
        "offsets": [s for s, _ in offsets],
        "entropies": encode_floats(ents),
        "entropy_method": "exact",
        "correct": False,
        "extracted_answer": "9",
    }


@pytest.mark.parametrize("as_dict", [False, True])
def test_plot_with_breakpoint(tmp_path, as_dict):
    rec = record()
    steps, bp = breakpoint_of(rec, GearConfig(min_step_tokens=1))
    assert bp.step_index == 2 and bp.reason == "max_surge"
    mark = breakpoint_dict(bp, len(steps), "exact") if as_dict else bp
    out = plot_entropy(rec, mark, steps, tmp_path / "sub" / "e.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_without_breakpoint_or_steps(tmp_path):
    out = plot_entropy(record(), None, None, tmp_path / "e.png", search_fraction=None)
    assert out.is_file()
