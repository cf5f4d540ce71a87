"""The pipeline config from YAML files and flags (jsonargparse), and back from a manifest.

cfg = pipeline_from(pipeline_parser().parse_args(["--config", "jobs/demo.yaml"]))
"""

from __future__ import annotations

import dataclasses

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from heal_batch.config import PipelineConfig


def pipeline_parser(**kwargs) -> ArgumentParser:
    """A parser with ``--config FILE`` and one flag per config field (``--ingest.num_shards``)."""
    parser = ArgumentParser(**kwargs)
    parser.add_argument("--config", action=ActionConfigFile, help="pipeline YAML (see jobs/)")
    parser.add_class_arguments(PipelineConfig, None, as_group=False)
    return parser


def pipeline_from(ns: Namespace, parser: ArgumentParser | None = None) -> PipelineConfig:
    """Build the typed config from a parsed namespace (nested sections become dataclasses)."""
    parser = parser or pipeline_parser()
    fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    values = parser.instantiate(Namespace(**{k: v for k, v in vars(ns).items() if k in fields}))
    return PipelineConfig(**{k: getattr(values, k) for k in fields})


def config_from_dict(data: dict) -> PipelineConfig:
    """Rebuild a pipeline config from a manifest's ``pipeline`` record."""
    parser = pipeline_parser()
    return pipeline_from(parser.parse_object(data), parser)
