"""Small fakes the tests run against (a Kubernetes API server)."""
