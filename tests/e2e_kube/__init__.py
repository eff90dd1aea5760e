"""The README's "On Kubernetes" walkthrough, run on the test cluster (docs/test-cluster.md)."""
