"""The queue-proxy sidecar: concurrency limit, request statistics, probes and drain in
front of one replica.

- ``__main__``: ``python -m queueproxy``; ``config``: its environment, checked at start;
- ``app``: the four listeners, the stats reporter, the shutdown sequence;
- ``handler``: the serving port's request path; ``readiness``: probing the app;
- ``drain``: the quiet-period timer; ``metrics``: Prometheus metrics.

See docs/queue-proxy.md.
"""
