"""Local mode: ``zeroserve up`` runs the whole system on this machine, no cluster.

- ``up``: the pure controller, the runtime and the control API in one process, the
  autoscaler and the activators as supervised child processes;
- ``control``: the control API (the CLI's and the data plane's stand-in for the
  Kubernetes API); ``protocol``: its state snapshots and the long-poll follower;
- ``state``: the hub between the controller, the runtime and the snapshots;
- ``runtime``: each revision's replicas, like a Deployment; ``replica``: one replica as
  an app process plus a queue-proxy process; ``ports``: the apps' ports.

See docs/local-mode.md.
"""
