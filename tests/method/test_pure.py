from __future__ import annotations

import math
import random

import pytest

from heal_batch.method.pure import (
    PureConfig,
    ScoredCandidate,
    answer_uncertainty,
    decide,
    first_step_after,
    first_token_at,
    percentile,
    pure_ratio,
    reference_too_small,
    score_candidate,
    step_perplexities,
)
from tests.method.helpers import make_steps, per_token

LENGTHS = [4, 4, 4, 4]


def _logprobs_for(step_ppls):
    """Per-token log-probs whose step perplexities are exactly ``step_ppls``."""
    return per_token([-math.log(p) for p in step_ppls], LENGTHS)


def _candidate(cid, step_ppls, answer_p, first_step=1):
    _, steps = make_steps(LENGTHS)
    logprobs = _logprobs_for(step_ppls)
    logprobs[-2:] = [math.log(answer_p)] * 2  # the answer: the last two tokens
    return score_candidate(cid, logprobs, steps, first_step, (14, 16))


def test_step_perplexities_after_the_cut():
    _, steps = make_steps(LENGTHS)
    ppls = step_perplexities(_logprobs_for([2.0, 3.0, 4.0, 5.0]), steps, first_step=2)
    assert ppls == pytest.approx([4.0, 5.0])
    assert step_perplexities(_logprobs_for([2.0] * 4), steps, first_step=4) == []


def test_answer_uncertainty_is_mean_nll_of_the_span():
    assert answer_uncertainty([-9.0, -1.0, -3.0], (1, 3)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="empty"):
        answer_uncertainty([-1.0], (1, 1))


def test_ratio_and_epsilon_guard():
    assert pure_ratio([1.5, 4.0], answer_nll=0.0) == pytest.approx(4.0 / 1.01)
    assert pure_ratio([4.0], answer_nll=0.0, eps=0.0) == pytest.approx(4.0)
    assert math.isfinite(pure_ratio([4.0], answer_nll=0.0, eps=0.01))
    assert pure_ratio([4.0], answer_nll=1e6) == 0.0  # exp overflow -> inf denominator
    with pytest.raises(ValueError, match="at least one"):
        pure_ratio([], 0.1)


def test_smooth_repair_is_kept_and_spiky_shortcut_dropped():
    smooth = _candidate("smooth", [1.4, 1.5, 1.6, 1.5], answer_p=0.9)
    spiky = _candidate("spiky", [1.4, 1.3, 40.0, 1.2], answer_p=0.99)
    others = [_candidate(f"o{i}", [1.5, 2.0 + i / 10, 2.0, 1.8], 0.8) for i in range(3)]
    assert spiky.ratio > 10 * smooth.ratio
    decisions = {d.candidate_id: d for d in decide([smooth, spiky, *others], [], PureConfig())}
    assert (decisions["spiky"].keep, decisions["spiky"].reason) == (False, "top_lambda")
    assert (decisions["smooth"].keep, decisions["smooth"].reason) == (True, "kept")
    assert sum(not d.keep for d in decisions.values()) == 1  # ceil(0.2 * 5)


def test_a_spike_before_the_cut_does_not_count():
    before = _candidate("c", [50.0, 1.5, 1.5, 1.5], answer_p=0.9, first_step=1)
    assert before.max_step_ppl == pytest.approx(1.5)


def _pool(ratios):
    return [ScoredCandidate(f"c{i:02d}", r) for i, r in enumerate(ratios)]


def test_lambda_zero_keeps_all_and_one_drops_all():
    pool = _pool([1.0, 5.0, 100.0, 2.0])
    keep_all = decide(pool, [], PureConfig(drop_top_fraction=0.0))
    assert all(d.keep and d.reason == "kept" for d in keep_all)
    drop_all = decide(pool, [], PureConfig(drop_top_fraction=1.0))
    assert all(not d.keep and d.reason == "top_lambda" for d in drop_all)


def test_lambda_share_is_rounded_up_without_float_surprises():
    pool = _pool([float(i) for i in range(10)])
    for lam, expected in [(0.7, 7), (0.2, 2), (0.05, 1), (0.3, 3)]:
        dropped = [d for d in decide(pool, [], PureConfig(drop_top_fraction=lam)) if not d.keep]
        assert len(dropped) == expected
        assert {d.candidate_id for d in dropped} == {f"c{i:02d}" for i in range(10 - expected, 10)}


def test_percentile_rule_against_a_known_reference():
    reference = [float(i) for i in range(1, 101)]  # q95 = 1 + 99 * 0.95 = 95.05
    pool = [ScoredCandidate("low", 95.0), ScoredCandidate("high", 95.1)]
    decisions = decide(pool, reference, PureConfig(drop_top_fraction=0.0))
    assert [(d.keep, d.reason) for d in decisions] == [
        (True, "kept"),
        (False, "above_reference_q95"),
    ]
    q90 = decide(pool, reference, PureConfig(drop_top_fraction=0.0, reference_percentile=90))
    assert [d.reason for d in q90] == ["above_reference_q90", "above_reference_q90"]


def test_percentile_rule_is_off_without_reference_or_when_disabled():
    pool = [ScoredCandidate("huge", 1e9)]
    assert decide(pool, [], PureConfig(drop_top_fraction=0.0))[0].keep
    off = PureConfig(drop_top_fraction=0.0, reference_percentile=None)
    assert decide(pool, [1.0, 2.0], off)[0].keep


def test_a_reference_smaller_than_min_reference_is_not_applied():
    """The q95 of 2 values is their maximum (seed 1 of the demo): below ``min_reference`` each
    percentile rule is off on its own, and ``reference_too_small`` says so."""
    pool = [ScoredCandidate("c", 5.0, answer_nll=2.0)]
    cfg = PureConfig(drop_top_fraction=0.0, min_reference=3)
    two, three = [1.0, 1.0], [1.0, 1.0, 1.0]
    assert decide(pool, two, cfg, two)[0].keep
    assert decide(pool, three, cfg, two)[0].reason == "above_reference_q95"
    assert decide(pool, two, cfg, three)[0].reason == "answer_not_derived_q95"
    assert reference_too_small((two, three), cfg) and not reference_too_small((three, three), cfg)
    assert not reference_too_small(([], []), cfg)  # no reference: the rules' plain off state
    off = PureConfig(reference_percentile=None, answer_reference_percentile=None, min_reference=3)
    assert not reference_too_small((two, two), off)
    with pytest.raises(ValueError, match="pure.min_reference"):
        PureConfig(min_reference=-1)


def test_percentile_matches_numpy_linear():
    np = pytest.importorskip("numpy")
    rng = random.Random(0)
    for n in (1, 2, 7, 50):
        values = [rng.uniform(0, 10) for _ in range(n)]
        for q in (0, 12.5, 50, 95, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_unscored_candidates_are_dropped_with_their_reason_and_not_pooled():
    _, steps = make_steps(LENGTHS)
    no_steps = score_candidate("late", _logprobs_for([2.0] * 4), steps, 4, (14, 16))
    no_box = score_candidate("nobox", _logprobs_for([2.0] * 4), steps, 1, None)
    assert no_steps.ratio is None and no_box.ratio is None
    pool = [no_steps, no_box, *_pool([1.0, 2.0, 3.0, 4.0])]
    decisions = decide(pool, [], PureConfig(drop_top_fraction=0.25))
    assert [d.reason for d in decisions] == [
        "no_steps_after_cut",
        "no_boxed_answer",
        "kept",
        "kept",
        "kept",
        "top_lambda",
    ]


def test_ties_break_by_candidate_id():
    pool = [ScoredCandidate("b", 2.0), ScoredCandidate("a", 2.0)]
    decisions = decide(pool, [], PureConfig(drop_top_fraction=0.5))
    assert [(d.candidate_id, d.keep) for d in decisions] == [("b", True), ("a", False)]


def test_pooled_decision_is_order_independent_so_sharded_scoring_is_exact():
    rng = random.Random(1)
    pool = _pool([rng.lognormvariate(0, 1) for _ in range(40)] + [3.0, 3.0])
    reference = [rng.lognormvariate(0, 1) for _ in range(30)]
    cfg = PureConfig()
    whole = {d.candidate_id: d for d in decide(pool, reference, cfg)}
    shards = [pool[i::3] for i in range(3)]  # scored separately, concatenated in another order
    joined = [c for shard in reversed(shards) for c in shard]
    assert {d.candidate_id: d for d in decide(joined, reference, cfg)} == whole
    assert sum(d.reason == "top_lambda" for d in whole.values()) == math.ceil(0.2 * 42)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="duplicate candidate_id 'x'"):
        decide([ScoredCandidate("x", 1.0), ScoredCandidate("x", 2.0)], [], PureConfig())
    with pytest.raises(ValueError, match="NaN"):
        decide([ScoredCandidate("x", math.nan)], [], PureConfig())
    for bad, key in (
        ({"drop_top_fraction": 1.5}, "drop_top_fraction"),
        ({"eps": -1.0}, "eps"),
        ({"reference_percentile": 101.0}, "reference_percentile"),
        ({"kinds": ["natural"]}, "kinds: 'natural' is not one of answer_guided, repair"),
        ({"pooling": "mixed"}, "pooling 'mixed' is not one of per_kind, together"),
        ({"min_reasoning_tokens": -1}, "min_reasoning_tokens"),
    ):
        with pytest.raises(ValueError, match=f"pure.{key}"):
            PureConfig(**bad)


def test_cut_from_strip_hint_selects_exactly_the_continuation_steps():
    from heal_batch.method.hints import build_hint, hint_prefill, strip_hint_with_cut
    from heal_batch.method.steps import split_token_strings

    prefix = ["Setup line one.\n\n", "A wrong turn.\n\n"]
    continuation = ["Fresh", " start.\n\n", "So \\boxed{5}."]
    hint = build_hint("5")
    text, cut = strip_hint_with_cut(
        hint_prefill("".join(prefix), hint) + "".join(continuation), hint
    )
    tokens = [*prefix[:1], "A wrong turn.", "\n\n", *continuation]  # re-tokenised differently
    assert "".join(tokens) == text
    _, steps = split_token_strings(tokens, min_step_tokens=1)
    k = first_step_after(steps, cut)
    assert text[steps[k].char_start :] == "".join(continuation)


def test_first_step_after_counts_a_step_that_straddles_the_cut():
    _, steps = make_steps(LENGTHS)
    cut = steps[2].char_start
    assert first_step_after(steps, cut) == 2
    assert first_step_after(steps, cut - 1) == 1
    assert first_step_after(steps, steps[-1].char_end) == len(steps)


def _bare(cid, answer_p, cut_token):
    """A shortcut: smooth text, then (from ``cut_token``) little more than an improbable answer."""
    _, steps = make_steps(LENGTHS)
    logprobs = _logprobs_for([1.5, 1.5, 1.5, 1.5])
    logprobs[-2:] = [math.log(answer_p)] * 2
    return score_candidate(cid, logprobs, steps, 3, (14, 16), cut_token=cut_token)


def test_the_ratio_alone_keeps_a_bare_answer_that_the_two_extra_rules_drop():
    genuine = [_candidate(f"g{i}", [1.5, 1.6, 1.7, 1.6], answer_p=0.9) for i in range(4)]
    bare = _bare("bare", answer_p=0.05, cut_token=13)  # one token between the cut and the answer
    padded = _bare("padded", answer_p=0.05, cut_token=4)  # 10 filler tokens, answer still a leap
    assert (bare.reasoning_tokens, padded.reasoning_tokens) == (1, 10)
    assert bare.ratio < min(g.ratio for g in genuine)  # high U makes R small: R cannot see it
    pool = [*genuine, bare, padded]
    reference_nlls = [-math.log(p) for p in (0.95, 0.9, 0.85, 0.8, 0.9) * 2]  # min_reference 10
    ratio_only = PureConfig(
        drop_top_fraction=0.0, min_reasoning_tokens=0, answer_reference_percentile=None
    )
    assert all(d.keep for d in decide(pool, [], ratio_only, reference_nlls))
    reasons = {d.candidate_id: d.reason for d in decide(pool, [], PureConfig(), reference_nlls)}
    assert reasons["bare"] == "no_reasoning_after_cut"
    assert reasons["padded"] == "answer_not_derived_q95"
    assert sorted(reasons.values()).count("kept") == 3  # one genuine repair is the top 20 %


def test_lambda_is_a_share_of_the_candidates_left_after_the_structural_rules():
    pool = [ScoredCandidate(f"c{i}", 1.0 + i, reasoning_tokens=20) for i in range(4)]
    pool.append(ScoredCandidate("short", 0.5, reasoning_tokens=2))
    reasons = {
        d.candidate_id: d.reason for d in decide(pool, [], PureConfig(drop_top_fraction=0.25))
    }
    assert reasons == {
        "c0": "kept",
        "c1": "kept",
        "c2": "kept",
        "c3": "top_lambda",
        "short": "no_reasoning_after_cut",
    }


def test_first_token_at_a_char():
    assert first_token_at([(0, 2), (2, 5), (5, 9)], 3) == 2
    assert first_token_at([(0, 2), (2, 5)], 0) == 0
    assert first_token_at([(0, 2), (2, 5)], 9) == 2
