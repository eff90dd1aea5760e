"""The queue-proxy sidecar: concurrency limit, request statistics, probes and drain in front of one replica."""
