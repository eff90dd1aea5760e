"""A revision that failed and backs off is answered at once (503 with its reason, the
exit code and the app's last lines), held requests included; one being retried holds
requests as before. Real sockets, no replica processes: the control plane's calls are
made by hand, as the local runtime makes them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest

from activator.handler import failure_detail
from zeroserve.topology import RevisionInfo

from .test_activator_e2e import HOST, V1, _until, activator, route

FAILURE = (
    "ExitCode3: Container failed with: Traceback (most recent call last): | "
    "ModuleNotFoundError: No module named 'flask'"
)
FAILED = RevisionInfo(V1, failure=FAILURE, backing_off=True)
RETRYING = replace(FAILED, backing_off=False)


def _check_failed(r: httpx.Response) -> None:
    assert r.status_code == 503
    assert r.text == f"revision default/hello-00001 failed: {FAILURE}\n"
    assert r.headers["x-zeroserve-error"] == (
        f'activator; reason=revision-failed; detail="{FAILURE}"'
    )
    assert r.headers["retry-after"] == "1"


async def test_held_requests_are_answered_at_once_when_the_revision_fails(
    tmp_path: Path,
) -> None:
    async with activator(activation_timeout=60) as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1))  # starting: requests are held
        async with httpx.AsyncClient(timeout=30) as client:
            held = [
                asyncio.create_task(client.get(url + "/", headers={"Host": HOST})) for _ in range(3)
            ]
            rev = act.revisions.get(V1)
            assert rev is not None
            await _until(lambda: rev.throttler.queued == 3)
            # the first start failed; it is being retried: still held
            act.put_revision(RETRYING)
            await asyncio.sleep(0.2)
            assert rev.throttler.queued == 3 and not any(t.done() for t in held)
            started = time.monotonic()
            act.put_revision(FAILED)  # the retry failed too: backing off
            replies = await asyncio.gather(*held)
            assert time.monotonic() - started < 5  # not at the 60 s activation timeout
            for r in replies:
                _check_failed(r)
            # requests that arrive while it backs off are answered at once too
            _check_failed(await client.get(url + "/", headers={"Host": HOST}))
            # once a retry starts, a request is held again (and gets the retry's outcome)
            act.put_revision(RETRYING)
            again = asyncio.create_task(client.get(url + "/", headers={"Host": HOST}))
            await _until(lambda: rev.throttler.queued == 1)
            act.put_revision(FAILED)
            _check_failed(await again)
        assert act.budget.used == 0
        assert rev.throttler.queued == 0


async def test_a_failed_revision_without_a_reason_still_says_it_failed(tmp_path: Path) -> None:
    async with activator() as (act, url):
        act.set_routes(route())
        act.put_revision(RevisionInfo(V1, backing_off=True))
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(url + "/", headers={"Host": HOST})
    assert r.status_code == 503
    assert r.text == "revision default/hello-00001 failed: RevisionFailed\n"


def test_the_header_carries_a_short_printable_quoted_detail() -> None:
    assert failure_detail('say "hi" \\ bye') == b'"say \\"hi\\" \\\\ bye"'
    assert failure_detail("caf\u00e9\tok") == b'"caf??ok"'
    long = failure_detail("x" * 500)
    assert len(long) == 160 + 2 and long.endswith(b'..."')


@pytest.mark.process  # a grpcio client
async def test_a_grpc_call_to_a_failed_revision_is_unavailable_with_the_reason(
    tmp_path: Path,
) -> None:
    async with activator() as (act, url):
        act.set_routes(route())
        act.put_revision(replace(FAILED, protocol="h2c"))
        port = url.rsplit(":", 1)[1]
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.default_authority", HOST)]
        ) as ch:
            call = ch.unary_unary("/test.Calls/Unary", lambda s: s, lambda b: b)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call(b"hi", timeout=20)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert e.value.details() == f"revision default/hello-00001 failed: {FAILURE}"
