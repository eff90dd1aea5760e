"""The autoscaler: metric collection, the KPA decider and actuators (built in a later issue)."""
