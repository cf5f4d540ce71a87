"""Hand-made trajectories for the method tests: steps of known token lengths."""

from __future__ import annotations

from heal_batch.method.steps import Step, split_token_strings


def make_steps(lengths: list[int], min_step_tokens: int = 1) -> tuple[str, list[Step]]:
    """A trajectory whose step i has ``lengths[i]`` tokens; every step ends with a blank line."""
    tokens: list[str] = []
    for i, n in enumerate(lengths):
        tokens += [f"w{i} "] * (n - 1) + [f"end{i}.\n\n"]
    return split_token_strings(tokens, min_step_tokens=min_step_tokens)


def per_token(values: list[float], lengths: list[int]) -> list[float]:
    """Expand one value per step into one value per token."""
    return [v for v, n in zip(values, lengths, strict=True) for _ in range(n)]
