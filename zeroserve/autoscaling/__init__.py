"""Autoscaling settings, shared by manifest validation and the autoscaler.

- ``config``: ``config-autoscaler`` (``AutoscalerConfig``) and ``config-deployment``
  (``DeploymentConfig``): defaults, parsing, validation, internal constants;
- ``annotations``: a revision's ``autoscaling.knative.dev/*`` annotations over them
  (``RevisionAutoscaling``).

See docs/autoscaling.md, "Configuration".
"""
