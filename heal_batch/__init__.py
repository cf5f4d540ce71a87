"""heal_batch: HEAL reasoning distillation as sharded, content-addressed batch jobs."""

__version__ = "0.1.0"
