"""The revision's Deployment rolls without lowering its capacity, as Knative's
(``pkg/reconciler/revision/resources/deploy.go``: ``maxUnavailable: 0``): a sidecar
image change (docs/kubernetes.md, "Upgrades") starts each new pod before an old one
goes, whatever the replica count. Kubernetes' rounding of the rolling-update bounds is
the test cluster's (``tests/cluster/controllers.py``)."""

from __future__ import annotations

import pytest

from controller import workloads
from tests.cluster.controllers import surge_and_unavailable

from .test_resources import REVISION, desired


@pytest.mark.parametrize("replicas", [1, 2, 4, 10, 100], ids=lambda n: f"{n}-replicas")
def test_a_roll_takes_no_pod_before_its_replacement_is_ready(replicas: int) -> None:
    deployment = workloads.deployment(
        desired(), REVISION, image="qp:1", replicas=replicas, progress_deadline=600
    )
    surge, unavailable = surge_and_unavailable(deployment)
    assert unavailable == 0
    assert surge >= 1  # so the roll can progress at all
