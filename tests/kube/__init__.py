"""Tests of zeroserve.kube and the autoscaler's Kubernetes adapters against the fake API server."""
