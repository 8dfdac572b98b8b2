"""The run engine: the step graph, computing steps, executors, the run directory's manifest."""
