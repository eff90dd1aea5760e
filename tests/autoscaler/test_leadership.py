"""``python -m autoscaler --leader-elect`` across a lost Lease (autoscaler/__main__.py):
the process stops scaling and stands by, and leads again as soon as the API answers,
instead of exiting (which cost a restart and a whole lease duration without an
autoscaler; docs/autoscaling.md, "Leader election"). In process, against the fake API
server, with fast Lease timings and a stand-in for the autoscaler's work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import autoscaler.__main__ as main
from autoscaler.config import Settings, parse_args
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.fixtures import fake_kube, kubeconfig  # noqa: F401
from zeroserve import kube
from zeroserve.leader import LeaderElector

LEASE = ("leases", "knative-serving", "zeroserve-autoscaler")


class Term:
    """Stands in for ``autoscaler.app.Autoscaler``: records its start and stop."""

    terms: list[Term]

    def __init__(self, settings: Settings, client: kube.KubeClient) -> None:
        self.ports = {"port": 0, "metrics_port": 0}
        self.started = self.stopped = False
        self.terms.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


async def eventually(check: object, what: str, within: float = 5.0) -> None:
    try:
        async with asyncio.timeout(within):
            while not check():  # type: ignore[operator]
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within}s: {what}") from None


@pytest.fixture
async def electors(
    fake_kube: FakeKubeAPI,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[list[LeaderElector]]:
    fake_kube.put(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "knative-serving"}}
    )
    made: list[LeaderElector] = []

    def fast(client: kube.KubeClient, settings: Settings) -> LeaderElector:
        elector = LeaderElector(
            client,
            settings.system_namespace,
            "zeroserve-autoscaler",
            lease_duration=2.0,
            renew_interval=0.3,
            retry_interval=0.1,
            renew_deadline=1.2,
        )
        made.append(elector)
        return elector

    Term.terms = []
    monkeypatch.setattr(main, "Autoscaler", Term)
    monkeypatch.setattr(main, "leader_elector", fast)
    yield made


async def test_a_lost_lease_is_a_standby_that_leads_again_when_the_api_is_back(
    fake_kube: FakeKubeAPI,  # noqa: F811
    kubeconfig: Path,  # noqa: F811
    electors: list[LeaderElector],
) -> None:
    settings = parse_args(["--kubeconfig", str(kubeconfig), "--leader-elect"])
    stop = asyncio.Event()
    task = asyncio.create_task(main.run(settings, stop))
    try:
        await eventually(lambda: Term.terms and Term.terms[0].started, "the first term")
        (elector,) = electors
        lease = fake_kube.get(*LEASE)
        assert lease is not None and lease["spec"]["holderIdentity"] == elector.identity

        await fake_kube.stop()  # the API does not answer: the Lease cannot be renewed
        await eventually(lambda: Term.terms[0].stopped, "the first term stopped", within=3)
        assert not task.done(), "the autoscaler exited on losing the Lease"
        assert len(Term.terms) == 1  # no scaling while it does not lead

        await fake_kube.start()
        # The Lease still names this process: it leads again at once, well within the
        # 2 s lease duration a new identity would have had to wait.
        await eventually(
            lambda: len(Term.terms) == 2 and Term.terms[1].started, "a second term", within=1.5
        )
        assert not task.done()
        assert electors == [elector]
        lease = fake_kube.get(*LEASE)
        assert lease is not None and lease["spec"]["holderIdentity"] == elector.identity
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0
    assert Term.terms[-1].stopped
    released = fake_kube.get(*LEASE)
    assert released is not None and not released["spec"].get("holderIdentity")
