"""Jobs: recipes that assemble a pipeline from stages, run it with an executor, and account for the run."""
