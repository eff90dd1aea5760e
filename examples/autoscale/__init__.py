"""The autoscale sample app."""
