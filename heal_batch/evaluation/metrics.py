"""Sampled-pass metrics from per-problem correct counts: unbiased pass@k and intervals.

Input: for each problem, ``c`` correct answers out of ``n`` samples. Output: plain numbers.

- **pass@k** is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
  Trained on Code", eq. 1): per problem ``1 - C(n-c, k) / C(n, k)``, the chance that k of the n
  samples drawn without replacement hold a correct one, averaged over problems. It is computed as
  ``1 - prod_{i=n-c+1..n} (1 - k/i)``, which never forms a binomial coefficient (no overflow at
  n = 1000) and is exactly 1 when ``n - c < k``.
- **avg@n** is the mean over problems of ``c / n`` (pass@1 with n samples per problem).
- **Intervals** are percentile-bootstrap intervals over problems: resample the problems with
  replacement (``resamples`` times, seeded), recompute the mean of the per-problem values, take
  the (1-confidence)/2 and (1+confidence)/2 quantiles. Problems are the unit that varies between
  benchmarks of the same kind; the n samples of one problem are not independent draws of it.

    >>> pass_at_k(n=4, c=1, k=2)
    0.5
    >>> sampled_metrics([0, 2, 4], n=4, seed=0)["pass_at_k"]["1"]
    0.5
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

CONFIDENCE = 0.95
RESAMPLES = 10_000
INTERVAL = "percentile bootstrap over problems"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` of ``n`` samples correct (needs 1 <= k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(counts: Sequence[int], n: int, k: int) -> float:
    """pass@k averaged over problems (``counts``: correct samples per problem, n each)."""
    if not counts:
        raise ValueError("mean_pass_at_k: no problems")
    return sum(pass_at_k(n, c, k) for c in counts) / len(counts)


def report_ks(n: int) -> list[int]:
    """The k values a record reports: powers of two below n, and n itself (1, 2, 4, ..., n)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n] if n >= 1 else []


def bootstrap_interval(
    values: Sequence[float], seed: int, confidence: float = CONFIDENCE, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one value per problem)."""
    if not values:
        raise ValueError("bootstrap_interval: no values")
    rng = random.Random(seed)
    size = len(values)
    means = sorted(sum(rng.choices(values, k=size)) / size for _ in range(resamples))
    tail = (1 - confidence) / 2 * (resamples - 1)
    return means[math.floor(tail)], means[math.ceil(resamples - 1 - tail)]


def sampled_metrics(counts: Sequence[int], n: int, seed: int) -> dict:
    """The record fields of a sampled pass: avg@n and pass@k (k in :func:`report_ks`) with
    intervals, the counts themselves, and how the intervals were made."""
    if n < 1 or not counts:
        raise ValueError(
            f"sampled_metrics needs n >= 1 and problems; got n={n}, {len(counts)} problems"
        )
    per_k, intervals = {}, {}
    for k in report_ks(n):
        values = [pass_at_k(n, c, k) for c in counts]
        per_k[str(k)] = sum(values) / len(values)
        intervals[str(k)] = list(bootstrap_interval(values, seed))
    share = [c / n for c in counts]
    return {
        "correct_counts": list(counts),
        "avg_at_n_ci": list(bootstrap_interval(share, seed)),
        "pass_at_k": per_k,
        "pass_at_k_ci": intervals,
        "interval": {
            "method": INTERVAL,
            "confidence": CONFIDENCE,
            "resamples": RESAMPLES,
            "seed": seed,
        },
    }
