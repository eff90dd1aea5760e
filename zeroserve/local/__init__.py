"""The local runtime: replicas as processes on this machine, no cluster."""
