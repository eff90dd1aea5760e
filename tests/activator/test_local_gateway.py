"""``python -m activator --local-port``: the public listener serves only public hosts (404
for every cluster-local one), the local gateway listener serves the cluster-local names
(a cluster-local route's, and a public route's svc names); tag-header routing from the
snapshot. A real activator process following a fake control API, in front of a real
queue-proxy and app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.reliability.support import FakeControl
from tests.support.apps import run_app
from tests.support.procs import activator_process, queue_proxy
from zeroserve.local.protocol import Snapshot
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey, Route, TagRoute, Target

pytestmark = pytest.mark.process

V1 = RevisionKey("default", "hello-00001")
V2 = RevisionKey("default", "hello-00002")  # no replica: a request for it waits, then 503
PRIVATE = RevisionKey("default", "private-00001")
PUBLIC_HOST = "hello.default.example.com"


def routes() -> tuple[Route, ...]:
    return (
        Route(
            "default",
            "hello",
            (PUBLIC_HOST,),
            (Target(V1, 100),),
            {
                "next": TagRoute(
                    ("next-hello.default.example.com",), ("next-hello.default.svc",), V2
                )
            },
            local_hosts=("hello.default.svc.cluster.local", "hello.default.svc"),
        ),
        Route(
            "default",
            "private",
            (),
            (Target(PRIVATE, 100),),
            local_hosts=("private.default.svc.cluster.local", "private.default.svc"),
        ),
    )


@pytest.mark.timeout(60)
async def test_public_and_local_listeners_serve_their_own_hosts(tmp_path: Path) -> None:
    async with run_app() as (app_port, app), queue_proxy(app_port, tmp_path) as qp:
        ep = Endpoint("pod", "127.0.0.1", qp.port, qp.ports["metrics_port"])
        snap = Snapshot(
            version=1,
            revisions={k: RevisionInfo(k, service=k.name[:-6]) for k in (V1, V2, PRIVATE)},
            routes=routes(),
            endpoints={V1: (ep,), PRIVATE: (ep,)},
            tag_header_routing=True,
        )
        control = FakeControl(snap)
        async with (
            control,
            activator_process(
                tmp_path / "activator.log",
                "--control",
                control.url,
                "--local-port",
                "0",
                "--activation-timeout",
                "0.5",
            ) as act,
            httpx.AsyncClient(timeout=10) as client,
        ):
            local_port = int(act.info["local_port"])
            assert local_port not in (0, act.port)
            public_url, local_url = act.url, f"http://127.0.0.1:{local_port}"

            async def status(url: str, host: str, **headers: str) -> int:
                r = await client.get(url + "/headers", headers={"Host": host, **headers})
                return r.status_code

            for host in (
                "private.default.svc.cluster.local",
                "private.default.svc",
                "PRIVATE.default.svc.cluster.local.:8080",
                "hello.default.svc.cluster.local",
                "hello.default.svc",
                "next-hello.default.svc",
            ):
                assert await status(public_url, host) == 404, host
            r = await client.get(
                public_url + "/headers", headers={"Host": "private.default.svc.cluster.local"}
            )
            assert b"no route for host" in r.content
            assert await status(public_url, PUBLIC_HOST) == 200
            for host in (
                "private.default.svc.cluster.local",
                "private.default.svc",
                "hello.default.svc.cluster.local",
                "hello.default.svc",
            ):
                assert await status(local_url, host) == 200, host
            assert await status(local_url, PUBLIC_HOST) == 404

            # Tag-header routing (on in the snapshot): the tag's revision, which has no
            # replica, so the request waits and times out naming it.
            r = await client.get(
                public_url + "/headers",
                headers={"Host": PUBLIC_HOST, "Knative-Serving-Tag": "next"},
            )
            assert r.status_code == 503 and b"default/hello-00002" in r.content
            # An unknown tag goes where the host goes, and the header reaches the app.
            r = await client.get(
                public_url + "/headers",
                headers={"Host": PUBLIC_HOST, "Knative-Serving-Tag": "nope"},
            )
            assert r.status_code == 200
            assert r.json()["headers"]["knative-serving-tag"] == "nope"

            # Switched off in a new snapshot: the header no longer routes.
            control.publish(
                Snapshot(**{**snap.__dict__, "version": 2, "tag_header_routing": False})
            )
            for _ in range(100):
                r = await client.get(
                    public_url + "/headers",
                    headers={"Host": PUBLIC_HOST, "Knative-Serving-Tag": "next"},
                )
                if r.status_code == 200:
                    break
            assert r.status_code == 200
        assert app.requests >= 7
