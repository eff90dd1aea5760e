"""The benchmark suite and its presets: ``python -m benchmarks.suite [--preset P]`` (``make bench``)."""
