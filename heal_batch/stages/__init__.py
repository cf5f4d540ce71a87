"""The stages, one module (or sub-package) each; the registry is heal_batch.pipeline.registry."""
