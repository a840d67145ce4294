"""Executors run a pipeline: `LocalExecutor` in this process, `RayExecutor` on a Ray cluster."""
