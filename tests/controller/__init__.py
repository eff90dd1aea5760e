"""The in-cluster controller against the fake API server, in-process and as a process, and
Lease leader election."""
