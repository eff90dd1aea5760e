"""The in-cluster controller (``zeroserve controller``): the pure controller's Knative
semantics over the Kubernetes API, with Deployments, private Services and Istio
VirtualServices for the data plane."""
