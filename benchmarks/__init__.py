"""Benchmarks of zeroserve against its baselines: ``python -m benchmarks.suite`` (see benchmarks/README.md).

The shared helpers are one module per concern (``processes``, ``servers``,
``loadgen``, ``procfs``, ``figures``, ``machine``, ``metrics``);
the suite and its presets are ``benchmarks/suite``.
"""
