from __future__ import annotations

import dataclasses

import pytest

from heal_batch.method.gear import (
    STRATEGIES,
    GearConfig,
    candidate_steps,
    find_breakpoint,
    step_surges,
)
from tests.method.helpers import make_steps, per_token

# 12 steps of 2 tokens: 24 tokens, the first third ends at token 8 -> candidates are steps 1, 2, 3
TWELVE = [2] * 12
CFG = GearConfig(min_step_tokens=1)


def _bp(step_entropy, lengths=TWELVE, cfg=CFG, seed=0):
    text, steps = make_steps(lengths)
    return text, find_breakpoint(per_token(step_entropy, lengths), steps, cfg, seed=seed)


def test_surge_in_first_third_is_the_breakpoint_and_the_cut_is_before_that_step():
    ent = [0.5, 0.5, 2.0, 0.6] + [0.5] * 8
    text, bp = _bp(ent)
    assert (bp.step_index, bp.token_index, bp.reason) == (2, 4, "max_surge")
    assert bp.surge == pytest.approx(1.5)
    assert text[: bp.char_index] == "w0 end0.\n\nw1 end1.\n\n"
    assert bp.step_entropies == tuple(ent)


def test_a_late_surge_is_never_chosen_and_the_fallback_is_max_entropy_in_the_window():
    ent = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 5.0, 0.1, 0.1]
    _, bp = _bp(ent)
    assert (bp.step_index, bp.reason) == (1, "fallback_max_entropy")
    assert bp.surges[9] > 4  # the surge exists, but outside the first third


def test_flat_entropy_falls_back_to_the_earliest_candidate():
    _, bp = _bp([0.1] * 12)  # 0.1 is not exact in binary: means may differ by float noise
    assert (bp.step_index, bp.reason) == (1, "fallback_max_entropy")


def test_a_single_token_step_is_merged_so_the_cut_lands_before_it():
    lengths = [8, 1, 8, 8, 8, 8, 8, 8, 8]
    ent = [0.5, 9.0, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    _, steps = make_steps(lengths, min_step_tokens=8)
    assert (steps[1].token_start, steps[1].token_end) == (8, 17)
    bp = find_breakpoint(per_token(ent, lengths), steps, GearConfig())
    assert (bp.step_index, bp.token_index) == (1, 8)
    assert bp.step_entropies[1] == pytest.approx((9.0 + 8 * 0.5) / 9)


def test_the_search_window_counts_tokens_not_steps():
    lengths = [20, 2, 2, 2, 2, 2]  # step 1 starts at token 20 of 30: outside the first third
    _, bp = _bp([0.1, 9.0, 0.1, 0.1, 0.1, 0.1], lengths)
    assert (bp.step_index, bp.reason) == (0, "no_candidates")


def test_window_size_changes_the_breakpoint():
    ent = [1.0, 1.0, 2.2, 3.0, 0.5, 2.5]
    lengths = [2] * 6
    wide = dataclasses.replace(CFG, search_fraction=1.0)
    assert _bp(ent, lengths, dataclasses.replace(wide, window=1))[1].step_index == 5
    assert _bp(ent, lengths, dataclasses.replace(wide, window=3))[1].step_index == 3


def test_surges_use_all_previous_steps_when_fewer_than_w():
    surges = step_surges([1.0, 2.0, 4.0, 8.0, 0.0], window=3)
    assert surges[0] is None
    assert surges[1:] == pytest.approx([1.0, 2.5, 8.0 - 7.0 / 3, 0.0 - 14.0 / 3])


def test_max_entropy_strategy():
    ent = [0.5, 1.0, 3.0, 2.9] + [0.1] * 8
    _, bp = _bp(ent, cfg=dataclasses.replace(CFG, strategy="max-entropy"))
    assert (bp.step_index, bp.reason) == (2, "max_entropy")


def test_random_strategy_is_seeded_and_stays_in_the_window():
    cfg = dataclasses.replace(CFG, strategy="random")
    picks = [_bp([0.5] * 12, cfg=cfg, seed=s)[1].step_index for s in range(30)]
    assert picks == [_bp([0.5] * 12, cfg=cfg, seed=s)[1].step_index for s in range(30)]
    assert set(picks) == {1, 2, 3}


def test_start_strategy_cuts_at_token_zero():
    _, bp = _bp([0.5, 0.5, 2.0] + [0.5] * 9, cfg=dataclasses.replace(CFG, strategy="start"))
    assert (bp.step_index, bp.token_index, bp.char_index, bp.reason) == (0, 0, 0, "start")


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_single_step_trajectory_cuts_at_the_start(strategy):
    cfg = dataclasses.replace(CFG, strategy=strategy)
    _, bp = _bp([0.7], [5], cfg)
    assert (bp.step_index, bp.token_index, bp.surge) == (0, 0, None)
    assert bp.reason == ("start" if strategy == "start" else "no_candidates")


def test_empty_trajectory():
    bp = find_breakpoint([], [], CFG)
    assert (bp.step_index, bp.token_index, bp.char_index, bp.reason) == (
        0,
        0,
        0,
        "empty_trajectory",
    )


def test_misaligned_entropies_are_rejected():
    _, steps = make_steps([2, 2])
    with pytest.raises(ValueError, match="entropies has 3 entries"):
        find_breakpoint([0.0] * 3, steps, CFG)


def test_nan_entropy_is_rejected():
    _, steps = make_steps([2, 2])
    with pytest.raises(ValueError, match="token 2 is NaN"):
        find_breakpoint([0.0, 0.0, float("nan"), 0.0], steps, CFG)


def test_unknown_strategy_lists_the_valid_names():
    with pytest.raises(ValueError, match="entropy-surge, max-entropy, random, start"):
        GearConfig(strategy="nope")


def test_a_registered_strategy_is_usable(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "last-candidate", lambda inp: (inp.candidates[-1], "mine"))
    _, bp = _bp([0.5] * 12, cfg=dataclasses.replace(CFG, strategy="last-candidate"))
    assert (bp.step_index, bp.reason) == (3, "mine")


def test_candidates_and_config_validation():
    _, steps = make_steps(TWELVE)
    assert candidate_steps(steps, 1 / 3) == (1, 2, 3)
    assert candidate_steps(steps, 1.0) == tuple(range(1, 12))
    for bad in ({"window": 0}, {"search_fraction": 0.0}, {"hint_template": "no answer"}):
        with pytest.raises(ValueError, match="gear."):
            GearConfig(**bad)
    with pytest.raises(ValueError, match="unknown step delimiter"):
        GearConfig(step_delimiter="sentence")


def test_one_line_per_step_teachers_get_a_real_breakpoint_with_the_line_delimiter():
    """SmolLM2 writes one step per line and no blank lines: blank-line steps leave no candidate."""
    from heal_batch.method.steps import split_token_strings

    tokens = ["3 + 4 = 7.", "\n", "7 * 2 = 14.", "\n", "14 - 9 = 6.", "\n"] + ["so 6."] * 9
    ents = [0.2, 0.2, 0.3, 0.3, 2.5, 0.4] + [0.3] * 9
    for delimiter, expected in (("blank_line", (0, "no_candidates")), ("line", (2, "max_surge"))):
        cfg = GearConfig(min_step_tokens=2, step_delimiter=delimiter)
        _, steps = split_token_strings(tokens, min_step_tokens=2, delimiter=delimiter)
        bp = find_breakpoint(ents, steps, cfg)
        assert (bp.step_index, bp.reason) == expected


def test_a_bad_step_delimiter_names_its_config_key():
    with pytest.raises(ValueError, match=r"^gear\.step_delimiter: unknown step delimiter"):
        GearConfig(step_delimiter="tab")


@pytest.mark.parametrize("backoff, cut", [(1, 2), (2, 1), (3, 0), (9, 0)])
def test_backoff_steps_moves_the_cut_back_from_the_chosen_step(backoff, cut):
    ent = [0.5, 0.5, 2.0, 0.6] + [0.5] * 8
    text, bp = _bp(ent, cfg=dataclasses.replace(CFG, backoff_steps=backoff))
    _, steps = make_steps(TWELVE)
    assert (bp.step_index, bp.backoff, bp.reason) == (cut, 2 - cut, "max_surge")
    assert bp.surge == pytest.approx(1.5)  # the chosen step's surge, not the cut step's
    assert (bp.token_index, bp.char_index) == (steps[cut].token_start, steps[cut].char_start)


def test_backoff_steps_must_be_positive_and_stays_out_of_run_keys_at_its_default():
    from heal_batch.store.runkeys import to_plain

    with pytest.raises(ValueError, match="backoff_steps"):
        GearConfig(backoff_steps=0)
    assert "backoff_steps" not in to_plain(GearConfig())
    assert to_plain(GearConfig(backoff_steps=2))["backoff_steps"] == 2
