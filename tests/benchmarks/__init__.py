"""Tests of the benchmark code (``benchmarks/``): its pure parts, and the suite in smoke mode."""
