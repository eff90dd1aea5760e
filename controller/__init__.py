"""The in-cluster controller (``python -m controller``; ``zeroserve controller`` is an
alias): the Knative semantics of ``zeroserve.serving`` over the Kubernetes API, with
Deployments, private Services and Istio VirtualServices for the data plane.

- ``__main__``: the process; ``config``: flags and the ``knative-serving`` ConfigMaps;
- ``app``: watch caches, the reconcile loop, leader election; ``metrics``: Prometheus
  and health endpoints;
- ``snapshot``: cluster objects as the pure controller's records; ``observe``: what pods
  and EndpointSlices say about a revision; ``planner``: one pass, caches in, writes out;
- ``workloads``: a revision's Deployment (with the queue-proxy) and private Service;
  ``ingress``: a route's VirtualService and placeholder Services; ``meta``: owner
  references, labels, spec hashes; ``writes``: carrying out a write.

See docs/kubernetes.md, "The controller".
"""
