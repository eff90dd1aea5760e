"""zeroserve's core: everything the four components (activator, queueproxy, autoscaler,
controller) share, and local mode. It imports no component (docs/README.md, "Layering").

- ``api``: Knative manifests parsed into frozen objects and validated, one-line errors;
- ``serving``: the control plane as pure code (Service -> Configuration -> Revision,
  Route resolution, status, the routing table);
- ``autoscaling``: ``config-autoscaler``, ``config-deployment`` and the revision
  annotations;
- ``http``: the HTTP/1.1 proxy engine both proxies run on;
- ``kube``: the Kubernetes client and watch caches (the only user of kubernetes_asyncio);
  ``knative``: Knative objects mapped to ``topology`` values; ``leader``: Lease election;
- ``local``: ``zeroserve up``, the local runtime and its control API;
- ``topology``: what the control plane tells the data plane; ``stats``: time-weighted
  request statistics and the wire ``Stat``; ``breaker``: the concurrency breaker;
- ``cli``: the ``zeroserve`` command; ``configmap``, ``envconfig``: strict settings
  parsers; ``periodic``: a step every N seconds.
"""
