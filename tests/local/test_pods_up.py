"""Replicas that behave like pods, through a real ``zeroserve up``: probes for their
whole life, liveness restarts, memory limits, the pod sandbox (PORT = containerPort,
volumes at their mountPath) and nothing left behind (docs/local-mode.md, "Pod
sandboxes", "Probes", "Limits")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .support import ROOT, UpProcess, read_until_up, up_env, zeroserve_up

pytestmark = [pytest.mark.timeout(150), pytest.mark.process]

APP = ["python", "tests/support/podapp.py"]
ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="pod sandboxes need root (CI runs as root)"
)


def _service(
    name: str, state: Path, *, scale: int = 1, annotations: dict[str, str] | None = None, **c: Any
) -> dict[str, Any]:
    env = [{"name": "STATE_DIR", "value": str(state)}, *c.pop("env", [])]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        "autoscaling.knative.dev/min-scale": str(scale),
                        "autoscaling.knative.dev/max-scale": str(scale),
                        **(annotations or {}),
                    }
                },
                "spec": {"containers": [{"command": APP, "env": env, **c}]},
            }
        },
    }


def _write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


async def _get(up: UpProcess, host: str, path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.get(up.ingress + path, headers={"Host": host})


async def _pods(up: UpProcess) -> list[dict[str, Any]]:
    return list((await up.get("pods"))["items"])


async def _ready(up: UpProcess, revision: str) -> dict[str, Any]:
    rev = await up.get("revisions", revision)
    return next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    return state


async def test_a_replica_failing_readiness_leaves_the_endpoints_and_comes_back(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path)
    probe = {"httpGet": {"path": "/ready"}, "periodSeconds": 1, "failureThreshold": 2}
    svc = _service("flaky", state, scale=2, readinessProbe=probe)
    async with zeroserve_up(tmp_path, _write(tmp_path / "s.yaml", svc)) as up:
        host = "flaky.default.localhost"

        async def both() -> set[str]:
            ids = {(await _get(up, host)).json()["id"] for _ in range(20)}
            return ids if len(ids) == 2 else set()

        ids = await up.until(both, "both replicas answer")
        victim = sorted(ids)[0]
        (state / f"{victim}.unready").touch()
        # failureThreshold x periodSeconds = 2 s, plus one period for the probe in flight
        await asyncio.sleep(3.5)
        seen = [(await _get(up, host)).json()["id"] for _ in range(30)]
        assert victim not in seen, seen
        table = (await up.acli("get", "pods")).stdout
        assert any(line.split()[1] == "1/2" for line in table.splitlines()[1:]), table
        (state / f"{victim}.unready").unlink()

        async def back() -> bool:
            return victim in {(await _get(up, host)).json()["id"] for _ in range(20)}

        await up.until(back, "the replica back in rotation", within=15)


async def test_a_failing_liveness_probe_restarts_the_app(tmp_path: Path) -> None:
    state = _state(tmp_path)
    probe = {"httpGet": {"path": "/alive"}, "periodSeconds": 1, "failureThreshold": 2}
    svc = _service("alive", state, livenessProbe=probe)
    async with zeroserve_up(tmp_path, _write(tmp_path / "s.yaml", svc)) as up:
        host = "alive.default.localhost"
        first = (await _get(up, host)).json()["id"]
        (state / "dead").touch()

        async def restarted() -> list[dict[str, Any]]:
            pods = await _pods(up)
            statuses = pods[0]["status"]["containerStatuses"] if pods else []
            return [s for s in statuses if s["restartCount"] >= 1]

        [app] = await up.until(restarted, "the app restarted", within=30)
        assert app["name"] == "user-container"
        terminated = app["lastState"]["terminated"]
        assert terminated["exitCode"] in (137, 143), terminated
        assert "Liveness probe failed" in terminated.get("message", ""), terminated
        (state / "dead").unlink()

        async def new_process() -> str:
            r = await _get(up, host)
            return r.json()["id"] if r.status_code == 200 else ""

        assert await up.until(new_process, "the restarted app answers") != first
        table = (await up.acli("get", "pods")).stdout.splitlines()
        assert table[1].split()[3] != "0", table  # RESTARTS


def _oom_service(state: Path) -> dict[str, Any]:
    return _service(
        "hog",
        state,
        env=[{"name": "ALLOC_MB", "value": "500"}],
        resources={"limits": {"memory": "350Mi"}},
    )


@pytest.mark.parametrize(
    "mode", [pytest.param("pod", marks=ROOT_ONLY), "process"], ids=["cgroup", "watchdog"]
)
async def test_an_app_over_its_memory_limit_is_oom_killed(tmp_path: Path, mode: str) -> None:
    state = _state(tmp_path)
    svc = _oom_service(state)
    args = ("--sandbox", mode)
    async with zeroserve_up(tmp_path, _write(tmp_path / "s.yaml", svc), args=args) as up:

        async def failed() -> dict[str, Any] | None:
            ready = await _ready(up, "hog-00001")
            return ready if ready["status"] == "False" else None

        ready = await up.until(failed, "the revision failed", within=60)
        assert ready["reason"] == "ExitCode137", ready
        assert ready["message"].startswith("Container failed with: OOMKilled"), ready
        assert "350Mi" in ready["message"]
        [pod] = await _pods(up)
        [app] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "user-container"]
        last = app["lastState"]["terminated"]
        assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137), app


@ROOT_ONLY
async def test_in_a_pod_sandbox_port_is_the_container_port(tmp_path: Path) -> None:
    state = _state(tmp_path)
    svc = _service("porty", state, ports=[{"containerPort": 8801}])
    async with zeroserve_up(tmp_path, _write(tmp_path / "s.yaml", svc)) as up:
        assert any("pod sandboxes" in line for line in up.output), up.output
        body = (await _get(up, "porty.default.localhost")).json()
        assert body["port"] == "8801"
        headers = body["headers"]
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-for"].startswith("127.0.0.1")
        [pod] = await _pods(up)
        ip = pod["status"]["podIP"]
        assert ip.startswith("198.18."), pod["status"]
        # the queue-proxy is on Knative's ports at the pod's IP: a standby one, which
        # joined the pod's network namespace when the replica took it
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(f"http://{ip}:8012/", headers={"Host": "porty.default.localhost"})
            assert r.json()["port"] == "8801"
            ahead = (await c.get(f"{up.control}/v1/standby", headers=up.headers)).json()
        assert ahead["queueProxies"]["taken"] == 1, ahead
        assert ahead["podNetworks"]["spares"] == 2, ahead


async def test_without_a_sandbox_ports_are_unique_and_volumes_refused(tmp_path: Path) -> None:
    state = _state(tmp_path)
    plain = _service("plain", state, ports=[{"containerPort": 8801}])
    async with zeroserve_up(
        tmp_path, _write(tmp_path / "s.yaml", plain), args=("--sandbox", "process")
    ) as up:
        assert any("plain processes" in line for line in up.output), up.output
        body = (await _get(up, "plain.default.localhost")).json()
        assert body["port"] != "8801"
        async with httpx.AsyncClient(timeout=10) as c:
            ahead = (await c.get(f"{up.control}/v1/standby", headers=up.headers)).json()
        # the replica's queue-proxy was a standby; no pod networks in this mode
        assert ahead["queueProxies"]["taken"] == 1 and "podNetworks" not in ahead, ahead
        vol = _service(
            "vol",
            state,
            volumeMounts=[{"name": "s", "mountPath": "/etc/zs-s", "readOnly": True}],
        )
        vol["spec"]["template"]["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "x"}}]
        p = await up.acli("apply", "-f", str(_write(tmp_path / "v.yaml", vol)), check=False)
        assert p.returncode != 0
        assert "spec.template.spec.volumes" in p.stderr and "--sandbox pod" in p.stderr, p.stderr


def _secret(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": values}


@ROOT_ONLY
async def test_a_secret_volume_appears_at_its_mount_path_and_follows_updates(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path)
    mount = f"/etc/zeroserve-test-{os.getpid()}/creds"
    assert not Path(mount).parent.exists()
    svc = _service(
        "mounted",
        state,
        volumeMounts=[{"name": "creds", "mountPath": mount, "readOnly": True}],
    )
    svc["spec"]["template"]["spec"]["volumes"] = [{"name": "creds", "secret": {"secretName": "db"}}]
    files = _write(tmp_path / "s.yaml", _secret("db", password="s3cret"), svc)
    async with zeroserve_up(tmp_path, files) as up:
        host = "mounted.default.localhost"
        r = await _get(up, host, f"/file?path={mount}/password")
        assert (r.status_code, r.text) == (200, "s3cret")
        assert not Path(mount, "password").exists()  # only inside the pod's mount namespace
        await up.acli(
            "apply", "-f", str(_write(tmp_path / "u.yaml", _secret("db", password="n3w")))
        )

        async def updated() -> bool:
            return (await _get(up, host, f"/file?path={mount}/password")).text == "n3w"

        await up.until(updated, "the new value in the file", within=20)
    assert not Path(mount).parent.exists(), "the mount point made for the pod is left"


def _leftovers() -> dict[str, list[str]]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    cgroups = [
        str(p)
        for base in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup")
        for p in Path(base, "zeroserve").glob("*")
        if p.is_dir()
    ]
    runs = (
        [str(p) for p in Path("/run/zeroserve").glob("*")]
        if Path("/run/zeroserve").exists()
        else []
    )
    return {
        "netns": [line.split()[0] for line in netns.splitlines() if line.startswith("zs-")],
        "links": [line.split(": ")[1] for line in links.splitlines() if ": zs" in line],
        "cgroups": cgroups,
        "runs": runs,
    }


@ROOT_ONLY
async def test_nothing_is_left_after_stop_or_after_up_is_killed(tmp_path: Path) -> None:
    state = _state(tmp_path)
    svc = _service("tidy", state, resources={"limits": {"memory": "200Mi"}})
    files = _write(tmp_path / "s.yaml", svc)
    before = _leftovers()
    assert not any(before.values()), f"left by something else before this test: {before}"
    # 1. killed: what it made stays until the next run removes it
    env = up_env(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zeroserve.cli", "up", str(files), "--port", "0",
        "--control-port", "0", "--local-port", "0", "--logs", str(tmp_path / "logs1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        await read_until_up(proc, [], 60)
        (state / "ids").unlink(missing_ok=True)
        for _ in range(300):  # its replica runs (its id written when it listens)
            if (state / "ids").exists():
                break
            await asyncio.sleep(0.1)
        made = _leftovers()
        assert made["netns"] and made["links"] and made["runs"], made
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    await asyncio.sleep(0.5)  # its children die with it (PR_SET_PDEATHSIG)
    assert _leftovers()["netns"], "a killed run cannot have removed its namespaces"
    # 2. the next run removes them, and removes its own when it stops
    async with zeroserve_up(tmp_path, files) as up:
        assert any("removed what a killed earlier run left" in line for line in up.output)
        await up.until(lambda: _ready_true(up, "tidy-00001"), "the service ready again", within=60)
    assert _leftovers() == {"netns": [], "links": [], "cgroups": [], "runs": []}


async def _ready_true(up: UpProcess, revision: str) -> bool:
    return (await _ready(up, revision))["status"] == "True"
