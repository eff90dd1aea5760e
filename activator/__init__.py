"""The activator: routes, holds and releases requests for revisions.

Every route's traffic enters here. The activator picks the revision (the traffic
split), holds a request while that revision has no ready replica, releases it to a
replica with room under containerConcurrency, and reports per-revision concurrency to
the autoscaler.

- ``__main__``: ``python -m activator``, the process, on Kubernetes or, with
  ``--control URL``, in local mode under ``zeroserve up``;
- ``config``: its settings, the command line and its checks;
- ``app``: the activator assembled: listeners, revisions, stats link, metrics, shutdown;
- ``handler``: the request path;
- ``routing``: host -> revision routing and the percent split;
- ``revisions``: the revisions served: their replicas, probing and throttlers;
- ``throttler``: per-revision admission and load balancing, with bounded queues;
- ``stats``: request statistics for the autoscaler; ``link``: the websocket carrying them;
- ``metrics``: Prometheus metrics per revision;
- ``kubernetes`` and ``local``: where routes, revisions and endpoints come from (watch
  caches of the cluster, or ``zeroserve up``'s control API).
"""
