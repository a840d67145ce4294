"""Evaluation of trained models: retrieval and zero-shot metrics, and the benchmarks that feed them."""
