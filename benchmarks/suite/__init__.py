"""The whole-system benchmark suite: ``python -m benchmarks.suite`` (``make bench``)."""
