"""The control plane, pure: Knative's Service -> Configuration -> Revision and Route
semantics, status, and the revisions and routing table the data plane runs from.

``zeroserve up`` runs it in memory; the in-cluster controller (``controller/``) runs the
same reconcile over records rebuilt from watch caches.

- ``controller``: ``Controller``, apply/delete and the reconcile; ``state``: its records;
- ``revisions``: naming and stamping revisions, the latest ready one;
- ``routes``: traffic defaults, resolution, the routing table; ``domains``: hosts and URLs;
- ``status``: conditions; ``views``: Kubernetes-shaped objects and kubectl tables;
  ``kinds``: kind names and lookup errors.
"""
