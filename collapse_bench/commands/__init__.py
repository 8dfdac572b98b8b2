"""The subcommands of ``collapse-bench``, one module per group of jobs; :mod:`collapse_bench.cli` assembles them."""
