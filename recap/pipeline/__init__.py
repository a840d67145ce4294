"""Batch, stage, pipeline, executor: the four nouns of recap's jobs (see shared/STYLE.md)."""
