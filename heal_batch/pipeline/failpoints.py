"""Failpoints for fault tests: make a chosen task raise or SIGKILL itself at a named point.

Off unless ``HEAL_BATCH_FAILPOINTS`` is set. Its value is a comma-separated list of
``<stage>[/<index>]@<point>=<action>``; actions are ``raise`` and ``kill`` (SIGKILL, no cleanup).

    HEAL_BATCH_FAILPOINTS='ingest/3@before-run=raise'
    HEAL_BATCH_FAILPOINTS='generate@mid-write=kill,score/0@after-shard=raise'

Points: ``before-run`` (before the stage code runs), ``mid-write`` (after the first record reaches
the output shard), ``after-shard`` (shard renamed into the store, receipt not yet written), and
``chunk`` (after a resumable task saved a progress chunk).
"""

from __future__ import annotations

import os
import signal

ENV = "HEAL_BATCH_FAILPOINTS"
POINTS = ("before-run", "mid-write", "after-shard", "chunk")
ACTIONS = ("raise", "kill")


class FailpointError(RuntimeError):
    """Raised by a ``raise`` failpoint."""


def parse(spec: str) -> list[tuple[str, int | None, str, str]]:
    """``'ingest/3@before-run=raise'`` → ``[('ingest', 3, 'before-run', 'raise')]``."""
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            target, rest = item.split("@", 1)
            point, action = rest.split("=", 1)
            stage, _, index = target.partition("/")
            rules.append((stage, int(index) if index else None, point, action))
        except ValueError:
            raise ValueError(
                f"{ENV}: cannot parse {item!r}; expected <stage>[/<index>]@<point>=<action>"
            ) from None
        if point not in POINTS or action not in ACTIONS:
            raise ValueError(
                f"{ENV}: {item!r}: point must be one of {POINTS}, action one of {ACTIONS}"
            )
    return rules


def hit(stage: str, index: int, point: str) -> None:
    """Trigger the failpoint configured for (stage, index, point), if any."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for rule_stage, rule_index, rule_point, action in parse(spec):
        if rule_stage == stage and rule_point == point and rule_index in (None, index):
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise FailpointError(f"failpoint {stage}/{index}@{point}")
