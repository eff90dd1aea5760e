"""``zeroserve logs``, ``describe``, ``get events`` and ``get -w`` against the control
API with real replicas (the fixture of tests/test_cli_client.py: the control API, the
controller and the local runtime of ``zeroserve up``, in this process, on a free port).

The app is Python's ``http.server``: it writes a line to stderr per request, so a
request to the pod is a line the test can wait for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.local.support import zeroserve_up
from tests.test_cli_client import FAILING as CRASH
from tests.test_cli_client import TOKEN, control_api, manifest, run
from zeroserve import cli
from zeroserve.local import access

ECHO = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: echo
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
        - image: python
          command: ["python", "-u", "-c"]
          args:
            - |
              import http.server, os, sys
              print("echo starting", flush=True)
              http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])),
                                     http.server.SimpleHTTPRequestHandler).serve_forever()
"""


async def _pods(url: str) -> list[dict]:  # type: ignore[type-arg]
    async with httpx.AsyncClient(headers=access.headers(TOKEN)) as c:
        return list((await c.get(f"{url}/v1/pods")).json()["items"])


async def _request(url: str, path: str) -> None:
    """A request straight to the pod's queue-proxy (the app logs it)."""
    (pod,) = [p for p in await _pods(url) if p["ready"]]
    e = pod["endpoint"]
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://{e['host']}:{e['port']}{path}")
    assert r.status_code in (200, 404)


async def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.process
async def test_logs_describe_events_and_watch_of_a_running_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path, replicas=True) as (_, url):
        echo = manifest(tmp_path, "echo.yaml", ECHO)
        code, _, err = await run(capsys, url, "apply", "-f", echo, "--wait", "--timeout", "40s")
        assert code == 0, err
        (pod,) = [p["name"] for p in await _pods(url)]
        await _request(url, "/first")

        # -- logs: the user container by default, saying so as kubectl ---------------
        async def logged() -> bool:
            _, out, _ = await run(capsys, url, "logs", f"pod/{pod}")
            return "GET /first" in out

        await _until(logged)
        code, out, err = await run(capsys, url, "logs", pod)
        assert code == 0 and out.splitlines()[0] == "echo starting", out
        assert err == 'Defaulted container "user-container" out of: user-container, queue-proxy\n'
        # the queue-proxy's own output
        code, out, _ = await run(capsys, url, "logs", f"pod/{pod}", "-c", "queue-proxy")
        assert code == 0 and "queue-proxy" in out and "echo starting" not in out
        # --tail: the last line only; revision/ and ksvc/ pick the pod
        code, out, err = await run(capsys, url, "logs", "revision/echo-00001", "--tail", "1")
        assert code == 0 and len(out.splitlines()) == 1 and "GET /first" in out, out
        code, out, _ = await run(capsys, url, "logs", "ksvc/echo", "-c", "user-container")
        assert code == 0 and "echo starting" in out
        # --since: a line written now is in the last 1.5 s, the start is not
        await asyncio.sleep(2.2)  # more than the clock's one-second precision
        await _request(url, "/second")

        async def recent() -> bool:
            _, out, _ = await run(capsys, url, "logs", pod, "--since", "1500ms")
            return "GET /second" in out

        await _until(recent)
        _, out, _ = await run(capsys, url, "logs", pod, "--since", "1500ms")
        assert "echo starting" not in out and "GET /first" not in out, out

        # -- errors, as kubectl's --------------------------------------------------------
        code, _, err = await run(capsys, url, "logs", f"pod/{pod}", "-c", "nope")
        assert code == 1
        assert err == (
            f"Error from server (BadRequest): container nope is not valid for pod {pod}; "
            "choose one of: [user-container queue-proxy]\n"
        )
        code, _, err = await run(capsys, url, "logs", "pod/missing")
        assert (code, err) == (
            1,
            'Error from server (NotFound): pods "missing" not found in namespace default\n',
        )
        code, _, err = await run(capsys, url, "logs", "revision/echo-00009")
        assert code == 1 and err.startswith("Error from server (NotFound):"), err
        code, _, err = await run(capsys, url, "logs", "deployment/x")
        assert code == 1 and "give pod/NAME, revision/NAME or ksvc/NAME" in err

        # -- -f: a line written after it started is printed ----------------------------
        follow = asyncio.create_task(
            run(capsys, url, "logs", pod, "-f", "--tail", "0", "--request-timeout", "3s")
        )
        await asyncio.sleep(1.0)
        await _request(url, "/followed")
        code, out, _ = await follow
        assert code == 0 and "GET /followed" in out and "GET /first" not in out, out

        # -- describe: conditions, traffic, replicas, containers, events ----------------
        code, out, err = await run(capsys, url, "describe", "ksvc", "echo")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["Name:", "echo"]
        assert "URL:" in out and "http://echo.default.localhost" in out
        traffic = lines.index("Traffic:")
        assert lines[traffic + 3].split()[:3] == ["100%", "echo-00001", "(latest)"]
        assert any(line.split()[:2] == ["Ready", "True"] for line in lines)
        events = lines[lines.index("Events:") + 3 :]
        assert [e.split()[1] for e in events] == ["Created", "Created"]  # Configuration, Route
        assert 'Created Configuration "echo"' in out and "service-controller" in out

        code, out, _ = await run(capsys, url, "describe", "revision", "echo-00001")
        assert code == 0
        assert "1 desired | 1 ready" in out and "user-container:" in out
        assert pod in out and "RevisionReady" in out
        assert "Scaled up replica set echo-00001-deployment to 1 from 0" in out

        code, out, _ = await run(capsys, url, "describe", "pod", pod)
        assert code == 0
        assert "Controlled By:  Revision/echo-00001" in out
        assert "queue-proxy:" in out and "Restart Count:  0" in out
        assert "Started container user-container" in out and "kubelet" in out

        code, _, err = await run(capsys, url, "describe", "ksvc", "nope")
        assert code == 1 and err.startswith("Error from server (NotFound):")

        # -- get events -------------------------------------------------------------------
        code, out, _ = await run(capsys, url, "get", "events")
        header, *rows = out.splitlines()
        assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        objects = {r.split()[3] for r in rows}
        assert {"service/echo", "revision/echo-00001", f"pod/{pod}"} <= objects, out
        code, out, _ = await run(capsys, url, "get", "events", "-A")
        assert out.split()[0] == "NAMESPACE" and out.splitlines()[1].split()[0] == "default"

        # -- get -w: a new row when the revision scales ------------------------------------
        watch = asyncio.create_task(
            run(capsys, url, "get", "revisions", "-w", "--request-timeout", "6s")
        )
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(headers=access.headers(TOKEN)) as c:
            r = await c.post(
                f"{url}/v1/scale",
                json={"namespace": "default", "revision": "echo-00001", "replicas": 2},
            )
            assert r.status_code == 200
        code, out, _ = await watch
        header, first, *changes = out.splitlines()
        assert header.split()[0] == "NAME" and first.split()[0] == "echo-00001"
        assert changes, out  # the revision's row again as its replicas change
        assert all(c.split()[0] == "echo-00001" for c in changes)
        assert changes[-1] != first

        # two pods now: logs of the revision says which one it reads, the ready one first
        code, out, err = await run(
            capsys, url, "logs", "revision/echo-00001", "-c", "user-container"
        )
        assert code == 0 and err == f"Found 2 pods, using pod/{pod}\n" and "GET /first" in out


@pytest.mark.process
async def test_watch_only_prints_a_service_applied_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path, replicas=True) as (_, url):
        watch = asyncio.create_task(
            run(capsys, url, "get", "ksvc", "--watch-only", "--request-timeout", "4s")
        )
        await asyncio.sleep(0.5)
        echo = manifest(tmp_path, "echo.yaml", ECHO)
        # not through the CLI: its output would mix with the watch's in capsys
        async with httpx.AsyncClient(headers=access.headers(TOKEN)) as c:
            r = await c.post(f"{url}/v1/apply", json={"file": echo, "yaml": Path(echo).read_text()})
            assert r.status_code == 200
        code, out, _ = await watch
        lines = out.splitlines()
        assert code == 0 and lines[0].split()[:2] == ["NAME", "URL"], out
        assert lines[1].split()[0] == "echo"
        assert "No resources found" not in out

        # logs -f ends by itself when its pod goes away
        async def running() -> bool:
            return any(p["ready"] for p in await _pods(url))

        await _until(running, 20)
        follow = asyncio.create_task(run(capsys, url, "logs", "ksvc/echo", "-f"))
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(headers=access.headers(TOKEN)) as c:
            r = await c.delete(f"{url}/v1/objects/ksvc/default/echo")
            assert r.status_code == 200
        code, out, _ = await asyncio.wait_for(follow, 20)
        assert code == 0 and "echo starting" in out


def test_watch_refuses_json_and_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["get", "ksvc", "-w", "-o", "json", "--token", "t"]) == 1
    assert "--watch and --watch-only print tables" in capsys.readouterr().err


@pytest.mark.process
async def test_a_crashing_app_through_zeroserve_up_logs_events_and_describe(
    tmp_path: Path,
) -> None:
    """A real ``zeroserve up``: the crashed container's output, the kubelet's BackOff and
    the revision's failure as events, and describe showing them."""
    manifest_file = tmp_path / "crash.yaml"
    manifest_file.write_text(CRASH)
    async with zeroserve_up(tmp_path, manifest_file, args=("--sandbox", "process")) as up:

        async def backing_off() -> bool:
            p = await up.acli("get", "events", check=False)
            return "BackOff" in p.stdout

        await _until(backing_off, 30)
        out = (await up.acli("get", "events")).stdout
        rows = [line.split(None, 4) for line in out.splitlines()[1:]]
        warnings = {(r[2], r[3]) for r in rows if r[1] == "Warning"}
        assert ("ExitCode3", "revision/crash-00001") in warnings, out
        assert any(
            reason == "BackOff" and obj.startswith("pod/crash-00001-") for reason, obj in warnings
        )

        p = await up.acli("logs", "ksvc/crash", "-c", "user-container")
        assert "cannot open the database" in p.stdout

        p = await up.acli("describe", "revision", "crash-00001")
        assert "Warning  ExitCode3" in p.stdout and "cannot open the database" in p.stdout
        (pod,) = [
            line.split()[0] for line in (await up.acli("get", "pods")).stdout.splitlines()[1:]
        ]
        p = await up.acli("describe", "pod", pod)
        assert "Last State:     Terminated" in p.stdout and "Exit Code:    3" in p.stdout
        assert "Back-off restarting failed container user-container" in p.stdout


async def test_the_new_routes_need_the_token_and_name_bad_parameters(tmp_path: Path) -> None:
    async with control_api(tmp_path) as (_, url), httpx.AsyncClient() as c:
        for path in ("/v1/logs/default/p", "/v1/events", "/v1/watch?since=0&wait=0"):
            assert (await c.get(url + path)).status_code == 401, path
        auth = access.headers(TOKEN)
        r = await c.get(url + "/v1/events", params={"object": "Revision"}, headers=auth)
        assert r.status_code == 400 and "object='Revision': expected KIND/NAME" in r.json()["error"]
        r = await c.get(url + "/v1/logs/default/p", params={"tailLines": "x"}, headers=auth)
        assert r.status_code == 400 and "tailLines an integer" in r.json()["error"]
        r = await c.get(url + "/v1/logs/default/p", headers=auth)
        assert r.status_code == 404 and r.json()["error"] == 'pods "p" not found'
        r = await c.get(url + "/v1/watch", params={"since": "x"}, headers=auth)
        assert r.status_code == 400
        r = await c.get(url + "/v1/watch", params={"since": "-1"}, headers=auth)
        assert r.json() == {"version": 0}
