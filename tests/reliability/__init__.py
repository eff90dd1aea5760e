"""Reliability: real-process fault tests of the data plane on loopback (kills, restarts,
floods, hostile input)."""
