"""Built-in arithmetic word problems of graded difficulty for the demo (exact integer answers).

Inputs -> outputs: (count, seed, levels, mix) -> problem records, deterministic by seed:
    {"id": "arith-s0-0003", "problem": "What is 8 + 6?", "answer": "14",
     "source": "builtin/arith-L1", "meta": {"level": 1}}

Levels are calibrated against the demo teacher (SmolLM2-135M-Instruct, bf16, the demo prompt,
T=0.7; measured 2026-11-24 on CPU over 36 problems, k=8, 96 new tokens) so that the demo fills all
three HEAL buckets (design.md section 9):
  1  one sum of two digits ("What is 7 + 5?")          mostly solved      pass rate 0.62
  2  a sum then a difference ("What is 4 + 5 - 3?")    sometimes solved   pass rate 0.39
  3  a four-step shopping word problem                 almost never       pass rate 0.03
Per problem the model tends to know an answer or not, so buckets are mixed within a level; over
36 problems (k=8) they came out easy 16, hard 3, corner 17. Use k >= 6 samples: with k=4, "hard"
(more than 1 and fewer than k/2 correct) is empty by definition; 24+ problems keep it non-empty.
Problem i depends only on (seed, i), so a longer list starts with the shorter one.

    generate_problems(24, seed=0)                        # levels 1, 2, 3, 1, 2, 3, ...
    generate_problems(30, seed=1, mix={1: 2, 2: 1, 3: 1})
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence

# The demo prompt: a system line and two worked examples that end with \boxed{}. Without examples
# SmolLM2-135M rarely writes \boxed{} at all (stack-2026-11-24.md section 4).
DEMO_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step, one short line per step, "
    "then give the final number in \\boxed{}."
)
DEMO_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is 2 + 5?", "2 + 5 = 7.\nThe answer is \\boxed{7}."),
    ("What is 3 + 4 - 2?", "3 + 4 = 7.\n7 - 2 = 5.\nThe answer is \\boxed{5}."),
)

_NAMES = ["Sara", "Tom", "Mia", "Leo", "Ana", "Ben", "Zoe", "Sam", "Eva", "Max", "Lily", "Omar"]


def generate_problems(
    count: int,
    seed: int = 0,
    levels: Sequence[int] = (1, 2, 3),
    mix: Mapping[int, float] | None = None,
) -> list[dict]:
    """`count` problem records (see the module docstring). mix: relative weight per level."""
    bad = [lv for lv in levels if lv not in _MAKERS]
    if bad or not levels:
        raise ValueError(f"levels {list(levels)!r}: each must be one of {sorted(_MAKERS)}")
    weights = {lv: float((mix or {}).get(lv, 1.0 if mix is None else 0.0)) for lv in levels}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"mix {dict(mix or {})!r}: weights must be >= 0 with a positive sum")
    schedule = _weighted_round_robin(weights, count)
    records = []
    for i, level in enumerate(schedule):
        rng = random.Random(f"heal-batch-arith:{seed}:{i}")
        problem, answer = _MAKERS[level](rng)
        records.append(
            {
                "id": f"arith-s{seed}-{i:04d}",
                "problem": problem,
                "answer": str(answer),
                "source": f"builtin/arith-L{level}",
                "meta": {"level": level},
            }
        )
    return records


def heldout_problems(
    count: int, seed: int = 1000, exclude: Collection[str] = (), levels: Sequence[int] = (1, 2, 3)
) -> list[dict]:
    """`count` problems of ``generate_problems(seed=seed)`` whose text is not in `exclude`.

    The held-out evaluation set ("arith" benchmark): drawn with its own seed, in the same order,
    skipping every problem whose text is in `exclude` (the training problems), so no evaluated
    question was seen in training. Raises ValueError when the levels cannot supply `count`
    distinct unseen problems (level 1 has only 81 different questions).
    """
    pool = generate_problems(4 * count + 100, seed=seed, levels=levels)
    seen = set(exclude)
    picked = []
    for record in pool:
        if record["problem"] not in seen:
            seen.add(record["problem"])
            picked.append(record)
            if len(picked) == count:
                return picked
    raise ValueError(
        f"held-out arith: only {len(picked)} of {count} problems (seed {seed}, levels "
        f"{list(levels)}) are not among the {len(exclude)} excluded texts; lower the count"
    )


def _level1(rng: random.Random) -> tuple[str, int]:
    """One sum of two digits."""
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return f"What is {a} + {b}?", a + b


def _level2(rng: random.Random) -> tuple[str, int]:
    """A sum, then a difference; small numbers, positive result."""
    a, b = rng.randint(2, 6), rng.randint(2, 6)
    c = rng.randint(1, a + b - 1)
    return f"What is {a} + {b} - {c}?", a + b - c


def _level3(rng: random.Random) -> tuple[str, int]:
    """Two products, a sum and change from a bill: four steps, two-digit results."""
    name = rng.choice(_NAMES)
    n1, p1 = rng.randint(3, 9), rng.randint(4, 12)
    n2, p2 = rng.randint(2, 8), rng.randint(3, 15)
    cost = n1 * p1 + n2 * p2
    bill = next(b for b in (50, 100, 200, 500) if b > cost)
    text = (
        f"{name} buys {n1} notebooks at {p1} dollars each and {n2} pens at {p2} dollars each. "
        f"{_pronoun(name)} pays with a {bill} dollar bill. How many dollars of change does "
        f"{name} get?"
    )
    return text, bill - cost


_MAKERS = {1: _level1, 2: _level2, 3: _level3}
_SHE = {"Sara", "Mia", "Ana", "Zoe", "Eva", "Lily"}


def _pronoun(name: str) -> str:
    return "She" if name in _SHE else "He"


def _weighted_round_robin(weights: Mapping[int, float], count: int) -> list[int]:
    """Deterministic interleaving with each level's share close to its weight (smooth WRR)."""
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0.0)
    out = []
    for _ in range(count):
        for lv, w in weights.items():
            current[lv] += w
        pick = max(current, key=lambda lv: (current[lv], -lv))
        current[pick] -= total
        out.append(pick)
    return out
