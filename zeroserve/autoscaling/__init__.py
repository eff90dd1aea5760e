"""Autoscaling settings shared by the controller (validation) and the autoscaler: config-autoscaler and revision annotations."""
