"""Training and evaluation metrics to TensorBoard and trackio, offline, chosen by the environment.

Which trackers run is a property of the machine a job runs on, not of the experiment, so it is
read from the environment and never enters a config section or a run key (turning tracking on
must not retrain or re-evaluate anything):

    HEAL_TRACKERS=tensorboard,trackio   # any of TRACKERS; unset or empty: JSONL only
    HEAL_TRACKING_PROJECT=heal          # trackio project (default "heal")
    TRACKIO_DIR=/shared/trackio         # trackio's own variable: where its SQLite files go

TensorBoard writes event files under ``<log_dir>/tensorboard``; trackio writes
``$TRACKIO_DIR/<project>.db`` (default ``~/.cache/huggingface/trackio``), which
``trackio show --project heal`` browses. Neither touches the network. A tracker whose package
is missing is skipped with a warning (``pip install 'heal-batch[tracking]'``).

    with open_trackers(tracker_names(), out_dir, "stage2", config=cfg.to_dict()) as sink:
        sink.log({"train/loss": 1.9, "train/lr": 1e-5}, step=12)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "trackio")
TRACKERS_ENV = "HEAL_TRACKERS"
PROJECT_ENV = "HEAL_TRACKING_PROJECT"
DEFAULT_PROJECT = "heal"
# Record fields that are scalar metrics of a benchmark (see evaluation/harness.py's records).
EVAL_METRICS = ("greedy_acc", "avg_at_n", "pass_at_n", "answered_greedy", "num_problems")
_log = logging.getLogger(__name__)


def tracker_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The trackers $HEAL_TRACKERS asks for (comma-separated); ValueError names the valid ones."""
    raw = (os.environ if environ is None else environ).get(TRACKERS_ENV, "")
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(
            f"{TRACKERS_ENV}={raw!r}: unknown tracker(s) {unknown}; "
            f"expected a comma-separated subset of {', '.join(TRACKERS)}"
        )
    return names


class Trackers:
    """Fans one metrics dict out to every open tracker; a context manager that closes them."""

    def __init__(self, sinks: dict[str, Any]) -> None:
        self.sinks = sinks

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        if not scalars:
            return
        for name, sink in self.sinks.items():
            if name == "tensorboard":
                for key, value in scalars.items():
                    sink.add_scalar(key, value, step)
            else:
                sink.log(scalars, step=step)

    def close(self) -> None:
        for name, sink in self.sinks.items():
            if name == "tensorboard":
                sink.close()
            else:
                sink.finish()
        self.sinks = {}

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trackers(
    names: tuple[str, ...], log_dir: Path, run_name: str, config: dict[str, Any] | None = None
) -> Trackers:
    """Open the named trackers for one run; missing packages are skipped with a warning."""
    sinks = {}
    for name in names:
        sink = _OPENERS[name](Path(log_dir), run_name, config)
        if sink is not None:
            sinks[name] = sink
    return Trackers(sinks)


def log_eval_metrics(
    records: list[dict[str, Any]],
    log_dir: Path,
    model: str,
    names: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Log the evaluation records of `model` (one per benchmark) as ``eval/<benchmark>/<metric>``
    at step 0, in the run ``eval-<model>`` (see `eval_run_name`).

    names: trackers to use (None: $HEAL_TRACKERS). Returns the metrics it logged.
    """
    names = tracker_names() if names is None else names
    metrics = eval_metrics(records)
    if names and metrics:
        with open_trackers(names, log_dir, eval_run_name(model)) as sink:
            sink.log(metrics, step=0)
    return metrics


def eval_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """The scalar metrics of evaluation records, keyed ``eval/<benchmark>/<metric>``."""
    out = {}
    for rec in records:
        prefix = f"eval/{rec['benchmark']}"
        for key in EVAL_METRICS:
            if _is_number(rec.get(key)):
                out[f"{prefix}/{key}"] = float(rec[key])
        for k, value in (rec.get("pass_at_k") or {}).items():
            if _is_number(value):
                out[f"{prefix}/pass_at_{k}"] = float(value)
    return out


def eval_run_name(model: str) -> str:
    """ "eval-heal-2-<key prefix>" for <workdir>/checkpoints/<run_key>/heal-2/hf, else
    "eval-<folder or hub name>"."""
    path = Path(model)
    if path.name == "hf" and path.parent.name:
        return f"eval-{path.parent.name}-{path.parent.parent.name[:12]}".rstrip("-")
    return f"eval-{path.name}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tensorboard(log_dir: Path, run_name: str, config: dict[str, Any] | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is absent
        _log.warning("tensorboard is not installed; not logging to it (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(log_dir / "tensorboard"))


def _trackio(log_dir: Path, run_name: str, config: dict[str, Any] | None) -> Any:
    try:
        import trackio
    except ImportError:
        _log.warning("trackio is not installed; not logging to it (pip install trackio)")
        return None
    project = os.environ.get(PROJECT_ENV) or DEFAULT_PROJECT
    # No space_id/server_url: trackio stays local. System metrics are off: they start a thread.
    return trackio.init(
        project=project,
        name=run_name,
        config=config,
        resume="allow",
        embed=False,
        auto_log_cpu=False,
        auto_log_gpu=False,
    )


_OPENERS = {"tensorboard": _tensorboard, "trackio": _trackio}
