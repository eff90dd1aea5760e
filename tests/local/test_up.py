"""``zeroserve up`` end to end: real controller, autoscaler, activator and replicas on loopback.

The fast config (stable window 6 s, grace 4 s) keeps scale-to-zero to ~10 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.reliability.procfs import descendants, pid_writing

from .support import EXAMPLES, ROOT, UpProcess, zeroserve_up

FAST = EXAMPLES / "config-autoscaler-fast.yaml"
HELLO_HOST = "helloworld-go.default.localhost"

pytestmark = pytest.mark.timeout(180)


async def _get(
    up: UpProcess, host: str, path: str = "/", client: httpx.AsyncClient | None = None
) -> httpx.Response:
    if client is None:
        async with httpx.AsyncClient(timeout=60) as c:
            return await c.get(up.ingress + path, headers={"Host": host})
    return await client.get(up.ingress + path, headers={"Host": host})


def _revisions(items: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["metadata"]["name"]: r for r in items["items"]}


@pytest.mark.process
async def test_helloworld_from_zero_to_zero_and_back(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "helloworld.yaml") as up:
        out = "".join(up.output)
        assert "service.serving.knative.dev/helloworld-go created" in out
        # the first request answers (the revision starts at its initial scale of 1)
        r = await _get(up, HELLO_HOST)
        assert (r.status_code, r.text) == (200, "Hello Go Sample v1!\n")
        ksvc = (await up.acli("get", "ksvc")).stdout
        assert ksvc.split("\n")[0].split() == [
            "NAME",
            "URL",
            "LATESTCREATED",
            "LATESTREADY",
            "READY",
            "REASON",
        ]
        assert "helloworld-go   http://helloworld-go.default.localhost" in ksvc
        assert "helloworld-go-00001" in ksvc and "True" in ksvc

        async def actual() -> int:
            rev = _revisions(await up.get("revisions"))["helloworld-go-00001"]
            return int(rev["status"].get("actualReplicas", 0))

        assert await up.until(actual, "one replica") == 1
        # no traffic: stable window (6 s) + grace (4 s) later, zero replicas
        await up.until(lambda: _is(actual, 0), "scale to zero", within=60)

        async def no_pods() -> bool:
            # (a replica shows as Terminating while its queue-proxy drains)
            return (
                await up.acli("get", "pods")
            ).stdout.strip() == "No resources found in default namespace."

        await up.until(no_pods, "replicas gone")
        # the next request wakes it and is not lost
        r = await _get(up, HELLO_HOST)
        assert (r.status_code, r.text) == (200, "Hello Go Sample v1!\n")


async def _is(f, value) -> bool:  # type: ignore[no-untyped-def]
    return await f() == value


@pytest.mark.process
async def test_burst_of_500_from_zero_all_answered(tmp_path: Path) -> None:
    async with zeroserve_up(
        tmp_path, FAST, EXAMPLES / "helloworld.yaml", args=("--domain", "localhost")
    ) as up:

        async def zero() -> bool:
            rev = _revisions(await up.get("revisions"))["helloworld-go-00001"]
            return (
                rev["status"].get("actualReplicas", 0) == 0
                and rev["status"].get("desiredReplicas", 1) == 0
            )

        await up.until(zero, "scale to zero", within=60)
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            rs = await asyncio.gather(*(_get(up, HELLO_HOST, "/", client) for _ in range(500)))
        assert Counter(r.status_code for r in rs) == {200: 500}


@pytest.mark.process
async def test_traffic_split_and_tags(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "hello.yaml") as up:
        assert (await _get(up, "hello.default.localhost")).text == "Hello World!\n"
        applied = (await up.acli("apply", "-f", str(EXAMPLES / "traffic-split.yaml"))).stdout
        assert "service.serving.knative.dev/hello configured" in applied

        async def split_ready() -> bool:
            svc = await up.get("ksvc", "hello")
            traffic = svc.get("status", {}).get("traffic", [])
            return (
                any(t.get("tag") == "current" for t in traffic)
                and svc["status"].get("latestReadyRevisionName") == "hello-00002"
            )

        await up.until(split_ready, "the 20/80 split")
        async with httpx.AsyncClient(timeout=60) as client:
            rs = [await _get(up, "hello.default.localhost", "/", client) for _ in range(2000)]
            counts = Counter(r.text for r in rs)
            assert abs(counts["Hello World!\n"] / 2000 - 0.20) <= 0.03, counts
            assert abs(counts["Hello Knative!\n"] / 2000 - 0.80) <= 0.03, counts
            assert (
                await _get(up, "current-hello.default.localhost", "/", client)
            ).text == "Hello World!\n"
            assert (
                await _get(up, "latest-hello.default.localhost", "/", client)
            ).text == "Hello Knative!\n"
        svc = await up.get("ksvc", "hello")
        tagged = {t["tag"]: t["url"] for t in svc["status"]["traffic"] if t.get("tag")}
        assert tagged == {
            "current": "http://current-hello.default.localhost",
            "latest": "http://latest-hello.default.localhost",
        }


@pytest.mark.process
async def test_new_template_moves_latest_traffic_without_a_failed_request(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "hello.yaml") as up:
        failures: list[int] = []
        seen: Counter[str] = Counter()
        stop = asyncio.Event()

        async def load() -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                while not stop.is_set():
                    r = await _get(up, "hello.default.localhost", "/", client)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    seen[r.text] += 1

        task = asyncio.create_task(load())
        await asyncio.sleep(1)
        v2 = (EXAMPLES / "hello.yaml").read_text().replace('value: "World"', 'value: "v2"')
        path = tmp_path / "hello-v2.yaml"
        path.write_text(v2)
        await up.acli("apply", "-f", str(path))

        async def moved() -> bool:
            return seen["Hello v2!\n"] > 50

        await up.until(moved, "traffic on the new revision")
        stop.set()
        await task
        assert failures == []
        assert seen["Hello World!\n"] > 0


@pytest.mark.process
async def test_autoscaling_bounds_and_load(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "autoscale.yaml") as up:

        async def replicas() -> int:
            revs = _revisions(await up.get("revisions"))
            return int(revs["autoscale-go-00001"]["status"].get("actualReplicas", 0))

        # min-scale 2: two replicas, and they stay with no traffic
        await up.until(lambda: _is(replicas, 2), "min-scale replicas")
        await asyncio.sleep(12)  # longer than stable window + grace
        assert await replicas() == 2
        # sustained load (target 10 per replica): more replicas, never above max-scale 10
        stop = asyncio.Event()
        peak = 0

        async def load() -> None:
            async with httpx.AsyncClient(
                timeout=60, limits=httpx.Limits(max_connections=60)
            ) as client:

                async def one() -> None:
                    while not stop.is_set():
                        r = await _get(up, "autoscale-go.default.localhost", "/?sleep=200", client)
                        assert r.status_code == 200

                await asyncio.gather(*(one() for _ in range(50)))

        task = asyncio.create_task(load())
        try:

            async def scaled() -> bool:
                nonlocal peak
                n = await replicas()
                peak = max(peak, n)
                return n > 2

            await up.until(scaled, "scale up under load", within=60)
            for _ in range(10):
                peak = max(peak, await replicas())
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            await task
        assert 2 < peak <= 10


@pytest.mark.process
async def test_config_domain_changes_the_urls(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "helloworld.yaml") as up:
        await up.acli("apply", "-f", str(EXAMPLES / "config-domain.yaml"))

        async def url() -> str:
            return (await up.get("ksvc", "helloworld-go"))["status"].get("url", "")

        await up.until(lambda: _equals(url, "http://helloworld-go.default.example.com"), "new URL")
        r = await _get(up, "helloworld-go.default.example.com")
        assert r.text == "Hello Go Sample v1!\n"
        assert (await _get(up, HELLO_HOST)).status_code == 404


async def _equals(f, value) -> bool:  # type: ignore[no-untyped-def]
    return await f() == value


@pytest.mark.process
async def test_bad_manifest_is_refused_with_its_error_and_changes_nothing(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "helloworld.yaml") as up:

        async def desired_state() -> tuple[object, ...]:
            svc = await up.get("ksvc", "helloworld-go")
            revs = sorted(_revisions(await up.get("revisions")))
            return svc["metadata"].get("generation"), svc["spec"], revs

        before = await desired_state()
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            (EXAMPLES / "helloworld.yaml")
            .read_text()
            .replace("      containers:", "      containerConcurrency: ten\n      containers:")
        )
        p = await up.acli("apply", "-f", str(bad), check=False)
        assert p.returncode == 1
        assert "bad.yaml" in p.stderr and "Service default/helloworld-go" in p.stderr
        assert "spec.template.spec.containerConcurrency" in p.stderr
        assert await desired_state() == before  # no new generation, spec or revision


@pytest.mark.process
async def test_killing_a_replicas_app_under_load_loses_nothing_that_had_not_reached_it(
    tmp_path: Path,
) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "autoscale.yaml") as up:

        async def ready_pods() -> list[str]:
            rows = (await up.acli("get", "pods")).stdout.strip().splitlines()[1:]
            return [r.split()[0] for r in rows if "Running" in r]

        await up.until(lambda: _count(ready_pods, 2), "two replicas")
        statuses: Counter[int] = Counter()
        stop = asyncio.Event()

        async def load() -> None:
            async with httpx.AsyncClient(timeout=60) as client:

                async def one() -> None:
                    while not stop.is_set():
                        r = await _get(up, "autoscale-go.default.localhost", "/?sleep=20", client)
                        statuses[r.status_code] += 1

                await asyncio.gather(*(one() for _ in range(10)))

        task = asyncio.create_task(load())
        await asyncio.sleep(2)
        victim = (await ready_pods())[0]
        pid = pid_writing(up.proc.pid, f"{victim}-app.log")
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(4)
        stop.set()
        await task
        # only requests inside the killed app may fail (at most its in-flight share)
        assert statuses[200] > 100
        assert sum(n for code, n in statuses.items() if code != 200) <= 10, statuses


async def _count(f, n) -> bool:  # type: ignore[no-untyped-def]
    return len(await f()) >= n


@pytest.mark.process
async def test_no_orphans_when_zeroserve_is_killed(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "helloworld.yaml") as up:
        assert (await _get(up, HELLO_HOST)).status_code == 200
        family = descendants(up.proc.pid)
        assert len(family) >= 4  # autoscaler, activator, an app and its queue-proxy
        up.proc.kill()
        await up.proc.wait()
        async with asyncio.timeout(15):
            while any(Path(f"/proc/{pid}").exists() for pid in family):
                await asyncio.sleep(0.1)


def test_examples_are_the_ones_the_readme_uses() -> None:
    for name in (
        "helloworld.yaml",
        "hello.yaml",
        "traffic-split.yaml",
        "autoscale.yaml",
        "config-domain.yaml",
        "config-autoscaler-fast.yaml",
    ):
        assert (EXAMPLES / name).is_file(), name
    assert (ROOT / "examples" / "helloworld" / "app.py").is_file()


@pytest.mark.process
async def test_a_command_that_fails_at_start_shows_revision_failed(tmp_path: Path) -> None:
    bad = tmp_path / "crash.yaml"
    bad.write_text(
        (EXAMPLES / "helloworld.yaml")
        .read_text()
        .replace("name: helloworld-go", "name: crash")
        .replace(
            'command: ["python", "examples/helloworld/app.py"]',
            'command: ["python", "-c", "import sys; print(\'no database\'); sys.exit(3)"]',
        )
    )
    async with zeroserve_up(tmp_path, FAST, bad) as up:

        async def failed() -> str:
            table = (await up.acli("get", "ksvc")).stdout
            return table if "RevisionFailed" in table else ""

        table = await up.until(failed, "RevisionFailed")
        assert "crash-00001" in table and "False" in table
        svc = await up.get("ksvc", "crash")
        ready = next(c for c in svc["status"]["conditions"] if c["type"] == "Ready")
        assert "no database" in ready["message"]

        async def crashlooping() -> bool:
            return "CrashLoopBackOff" in (await up.acli("get", "pods")).stdout

        await up.until(crashlooping, "CrashLoopBackOff")


@pytest.mark.process
async def test_delete_stops_the_replicas_and_the_route(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, FAST, EXAMPLES / "helloworld.yaml") as up:
        assert (await _get(up, HELLO_HOST)).status_code == 200
        out = (await up.acli("delete", "ksvc", "helloworld-go")).stdout
        assert 'service.serving.knative.dev "helloworld-go" deleted' in out

        async def gone() -> bool:
            pods = (await up.acli("get", "pods")).stdout
            return "No resources found" in pods

        await up.until(gone, "replicas stopped")
        r = await _get(up, HELLO_HOST)
        assert r.status_code == 404
        assert (
            await up.acli("get", "ksvc")
        ).stdout.strip() == "No resources found in default namespace."


@pytest.mark.process
async def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    async with zeroserve_up(tmp_path, EXAMPLES / "helloworld.yaml") as up:
        assert (await _get(up, HELLO_HOST)).status_code == 200
        family = descendants(up.proc.pid)
        up.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(up.proc.wait(), 60) == 0
        assert not [
            pid
            for pid in family
            if Path(f"/proc/{pid}").exists()
            and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1][:3]
        ]
