"""``python -m activator`` as a real process against the fake API server, forwarding to a
real queue-proxy process in front of a real app."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from activator.config import DEFAULT_AUTOSCALER_URL, KubeOptions, Settings, parse_args
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.support.apps import run_app
from tests.support.procs import activator_process, queue_proxy

from .helpers import endpoint, endpoint_slice, eventually, revision

pytestmark = pytest.mark.process  # every test here runs a component, helm or kubectl

HOST = "hello.default.example.com"


def knative_route(traffic: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"traffic": [{"configurationName": "hello", "percent": 100}]},
        "status": {"url": f"http://{HOST}", "traffic": traffic},
    }


async def test_forwards_by_route_host_to_a_queue_proxy_and_exits_0_on_sigterm(
    fake_kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path
) -> None:
    async with run_app() as (app_port, app), queue_proxy(app_port, tmp_path) as qp:
        fake_kube.put(revision("hello-00001"))
        fake_kube.put(knative_route([{"revisionName": "hello-00001", "percent": 100}]))
        # Not ready yet as far as Kubernetes knows: the activator probes it, and uses it
        # as soon as the queue-proxy says its app is up.
        fake_kube.put(
            endpoint_slice(
                "hello-00001-private-a",
                "hello-00001",
                [endpoint("hello-00001-pod", "127.0.0.1", ready=False)],
                ports={"http": qp.port, "http-autometric": qp.ports["metrics_port"]},
            )
        )
        log = tmp_path / "activator.log"
        async with activator_process(
            log, "--kubeconfig", str(kubeconfig), "--pod-name", "activator-test"
        ) as act:
            proc, info = act.proc, act.info
            assert info["activator"] == "listening"
            assert info["pod"] == "activator-test"
            url = f"http://127.0.0.1:{info['port']}"
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(url + "/hello", headers={"Host": HOST})
                assert (r.status_code, r.text) == (200, "hello")
                r = await client.get(
                    url + "/hello", headers={"Host": "hello.default.svc.cluster.local"}
                )
                assert (r.status_code, r.text) == (200, "hello")
                r = await client.get(url + "/hello", headers={"Host": f"v1-{HOST}"})
                assert r.status_code == 404
                assert app.requests == 2

                # A tag appears in the route's status: its host works without a restart.
                fake_kube.patch(
                    "routes",
                    "default",
                    "hello",
                    {
                        "status": {
                            "traffic": [
                                {
                                    "revisionName": "hello-00001",
                                    "percent": 100,
                                    "tag": "v1",
                                    "url": f"http://v1-{HOST}",
                                }
                            ]
                        }
                    },
                )
                statuses: list[int] = []

                async def tag_host_served() -> bool:
                    r = await client.get(url + "/hello", headers={"Host": f"v1-{HOST}"})
                    statuses.append(r.status_code)
                    return r.status_code == 200

                async with asyncio.timeout(10):
                    while not await tag_host_served():
                        await asyncio.sleep(0.05)
                assert statuses[-1] == 200

                metrics = await client.get(f"http://127.0.0.1:{info['metrics_port']}/metrics")
                assert metrics.status_code == 200

            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0, log.read_text()


async def test_a_revision_deleted_while_running_is_404(
    fake_kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_kube.put(revision("hello-00001"))
    fake_kube.put(knative_route([{"revisionName": "hello-00001", "percent": 100}]))
    async with activator_process(
        tmp_path / "activator.log", "--kubeconfig", str(kubeconfig)
    ) as act:
        proc, info = act.proc, act.info
        url = f"http://127.0.0.1:{info['port']}"
        fake_kube.delete("revisions", "default", "hello-00001")
        async with httpx.AsyncClient(timeout=10) as client:
            last: list[httpx.Response] = []

            async def fetch() -> None:
                last.append(
                    await client.get(url + "/", headers={"Host": HOST, "Connection": "close"})
                )

            # Without the revision, the route's host names nothing the activator can hold a
            # request for: it answers at once instead of waiting for a replica.
            async with asyncio.timeout(10):
                while True:
                    await fetch()
                    if last[-1].status_code == 404:
                        break
                    await asyncio.sleep(0.05)
        assert "revision not found: default/hello-00001" in last[-1].text
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


def test_flags_and_environment_make_the_settings() -> None:
    settings, options = parse_args(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "8013",
            "--trusted-port",
            "8014",
            "--trusted-cidr",
            "10.0.0.0/8",
            "--trusted-cidr",
            "192.168.1.7/16",
            "--metrics-port",
            "0",
            "--activation-timeout",
            "30",
            "--queue-depth",
            "5",
            "--budget",
            "50",
            "--drain-seconds",
            "0",
            "--kubeconfig",
            "/k",
            "--namespace",
            "apps",
            "--system-namespace",
            "serving",
            "--activator-service",
            "act",
            "--sync-timeout",
            "5",
        ],
        {"AUTOSCALER_URL": "ws://scaler:8080/", "POD_NAME": "activator-7", "POD_IP": "10.1.0.5"},
    )
    assert settings == Settings(
        host="127.0.0.1",
        port=8013,
        trusted_port=8014,
        trusted_cidrs=("10.0.0.0/8", "192.168.0.0/16"),
        metrics_port=0,
        autoscaler_url="ws://scaler:8080/",
        pod_name="activator-7",
        activation_timeout=30.0,
        queue_depth=5,
        budget=50,
        drain_seconds=0.0,
    )
    assert options == KubeOptions(
        kubeconfig="/k",
        namespace="apps",
        system_namespace="serving",
        activator_service="act",
        pod_ip="10.1.0.5",
        sync_timeout=5.0,
    )


def test_defaults() -> None:
    settings, options = parse_args([], {})
    assert settings == Settings(autoscaler_url=DEFAULT_AUTOSCALER_URL)
    assert (settings.port, settings.metrics_port, settings.drain_seconds) == (8012, 9090, 45.0)
    assert options == KubeOptions()
    # An empty URL turns the stats off; flags win over the environment.
    settings, options = parse_args(
        ["--autoscaler-url", "", "--pod-ip", "10.1.0.6"],
        {"AUTOSCALER_URL": "ws://a/", "POD_IP": "10.1.0.5"},
    )
    assert (settings.autoscaler_url, options.pod_ip) == (None, "10.1.0.6")


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (
            ["--port", "70000"],
            {},
            "argument --port: '70000' is not a port in 0..65535 (0: any free port)",
        ),
        (
            ["--metrics-port", "http"],
            {},
            "argument --metrics-port: 'http' is not a port in 0..65535 (0: any free port)",
        ),
        (
            ["--trusted-cidr", "10.0.0.0/33"],
            {},
            "argument --trusted-cidr: '10.0.0.0/33' is not an IP network (like 10.0.0.0/8)",
        ),
        (
            ["--activation-timeout", "0"],
            {},
            "argument --activation-timeout: '0' is not a positive number of seconds",
        ),
        (
            ["--drain-seconds", "nan"],
            {},
            "argument --drain-seconds: 'nan' is not a number of seconds >= 0",
        ),
        (["--queue-depth", "ten"], {}, "argument --queue-depth: 'ten' is not a positive integer"),
        (["--budget", "0"], {}, "argument --budget: '0' is not a positive integer"),
        (
            ["--autoscaler-url", "http://autoscaler/"],
            {},
            "argument --autoscaler-url: 'http://autoscaler/' is not a ws:// or wss:// URL",
        ),
        ([], {"POD_IP": "me"}, "argument --pod-ip: 'me' is not an IP address"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
    ],
    ids=[
        "port-range",
        "port-not-a-number",
        "cidr",
        "activation-timeout",
        "drain-seconds",
        "queue-depth",
        "budget",
        "autoscaler-url",
        "pod-ip-from-env",
        "unknown-flag",
    ],
)
def test_bad_flags_exit_1_with_one_line(
    flags: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(flags, env)
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"activator: {message}\n"


async def test_the_process_exits_1_on_a_bad_flag() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "activator",
        "--port",
        "-1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert (proc.returncode, out) == (1, b"")
    assert err == b"activator: argument --port: '-1' is not a port in 0..65535 (0: any free port)\n"


async def test_caches_that_cannot_list_exit_1_naming_them(
    fake_kube: FakeKubeAPI, kubeconfig: Path
) -> None:
    fake_kube.fail_next("GET", "/routes", 403, count=1000)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "activator",
        "--kubeconfig",
        str(kubeconfig),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--sync-timeout",
        "0.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert out == b""  # never said it was listening
    assert (
        "activator: cannot start: Kubernetes caches not synced within 0.5s: "
        "routes.serving.knative.dev (all namespaces)"
    ) in err.decode()
    await eventually(lambda: fake_kube.active_watches == 0, "the process's watches are gone")
