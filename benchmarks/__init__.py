"""Benchmarks of zeroserve against its baselines: ``python -m benchmarks.suite`` (see benchmarks/README.md)."""
