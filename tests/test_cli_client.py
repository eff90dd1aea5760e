"""The client commands as kubectl's: ``wait`` and ``apply --wait``, ``get -o wide|json|yaml``
and ``-A`` for every kind, and errors on stderr with a non-zero exit, across ``get``,
``delete`` and ``apply``.

Most tests run the real control API in-process over a controller whose revisions the
test marks ready or failed (``set_revision_state``, what the runtime reports), so the
waits are decided by the test, not by an app's start; the ones marked ``process`` run
real replicas."""

from __future__ import annotations

import argparse
import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml

from zeroserve import cli
from zeroserve.local import access
from zeroserve.local.control import ControlAPI, serve, stop
from zeroserve.local.protocol import Snapshot
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.state import StateHub
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey

TOKEN = "client-test-token"
ROOT = Path(__file__).resolve().parents[1]
HELLO = (ROOT / "examples" / "hello.yaml").read_text()
SPLIT = (ROOT / "examples" / "traffic-split.yaml").read_text()


@asynccontextmanager
async def control_api(
    tmp_path: Path, *, replicas: bool = False
) -> AsyncIterator[tuple[Controller, str]]:
    """The control API on a free port; with ``replicas``, a runtime that runs them."""
    controller = Controller(time.time())
    hub = StateHub(controller)
    runtime = LocalRuntime(on_change=hub.runtime_changed, log_dir=tmp_path)
    api = ControlAPI(hub, controller, runtime, token=TOKEN)
    if replicas:
        hub.attach(runtime)
    runner, port = await serve(api, "127.0.0.1", 0)
    try:
        yield controller, f"http://127.0.0.1:{port}"
    finally:
        await runtime.close()
        hub.close()
        await stop(runner)


async def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    """``zeroserve ARGS`` against ``url``: (exit code, stdout, stderr)."""
    code = await asyncio.to_thread(cli.main, [*args, "--server", url, "--token", TOKEN])
    out, err = capsys.readouterr()
    return code, out, err


def manifest(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def mark(controller: Controller, rev: str, ready: bool, reason: str = "", msg: str = "") -> None:
    key = RevisionKey("default", rev)
    assert controller.set_revision_state(
        key, ready=ready, reason=reason, message=msg, now=time.time()
    )


# -- durations and conditions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1m30s", 90), ("1.5h", 5400), ("500ms", 0.5), ("45", 45), ("0", 0)],
)
def test_timeouts_are_kubectls_durations_or_seconds(text: str, seconds: float) -> None:
    assert cli.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "m", "1m 30s", "-5s", "-1", "inf", "30s5"])
def test_a_bad_timeout_is_refused_naming_the_flag(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.duration(text)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["wait", "ksvc", "hello", f"--timeout={text}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout: invalid duration" in err, err


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("condition=Ready", ("Ready", "True")),
        ("condition=ready=false", ("ready", "false")),
        ("CONDITION=RoutesReady=True", ("RoutesReady", "True")),
    ],
)
def test_for_takes_a_condition_and_its_status(text: str, parsed: tuple[str, str]) -> None:
    assert cli.condition(text) == parsed


@pytest.mark.parametrize("text", ["delete", "Ready", "condition=", "jsonpath={.status}"])
def test_for_refuses_what_it_cannot_wait_for(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["wait", "ksvc", "hello", "--for", text])
    assert "argument --for" in capsys.readouterr().err


def _obj(
    conditions: list[dict[str, Any]], generation: int = 2, observed: int = 2, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {"observedGeneration": observed, "conditions": conditions, **status},
    }


READY = {"type": "Ready", "status": "True"}


def test_a_condition_counts_only_for_the_current_generation() -> None:
    assert cli.check_condition(_obj([READY]), "ready", "true").met
    assert not cli.check_condition(_obj([READY], observed=1), "Ready", "True").met
    behind = {**READY, "observedGeneration": 1}
    assert not cli.check_condition(_obj([behind]), "Ready", "True").met
    assert not cli.check_condition(_obj([]), "Ready", "True").met


def test_ready_needs_the_latest_created_revision_to_be_the_ready_one() -> None:
    old = _obj([READY], latestCreatedRevisionName="h-2", latestReadyRevisionName="h-1")
    new = _obj([READY], latestCreatedRevisionName="h-2", latestReadyRevisionName="h-2")
    assert not cli.check_condition(old, "Ready", "True").met
    assert cli.check_condition(new, "Ready", "True").met


def test_ready_false_is_a_failure_unless_false_is_waited_for() -> None:
    failed = _obj([{"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "boom"}])
    verdict = cli.check_condition(failed, "Ready", "True")
    assert not verdict.met and verdict.failure == "ExitCode1: boom"
    assert cli.check_condition(failed, "ready", "False") == cli.Verdict(True)
    unknown = _obj([{"type": "Ready", "status": "Unknown", "reason": "Deploying"}])
    assert cli.check_condition(unknown, "Ready", "True") == cli.Verdict(False)


# -- wait ------------------------------------------------------------------------------


async def test_wait_returns_once_the_service_is_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        await run(capsys, url, "apply", "-f", manifest(tmp_path, "hello.yaml", HELLO))
        waiting = asyncio.create_task(run(capsys, url, "wait", "ksvc", "hello", "--timeout", "20s"))
        await asyncio.sleep(0.6)
        assert not waiting.done()
        mark(controller, "hello-00001", True)
        code, out, err = await asyncio.wait_for(waiting, 10)
        assert (code, out, err) == (0, "service.serving.knative.dev/hello condition met\n", "")

        code, out, _ = await run(capsys, url, "wait", "rev", "hello-00001", "--for=condition=ready")
        assert (code, out) == (0, "revision.serving.knative.dev/hello-00001 condition met\n")


async def test_wait_times_out_as_kubectl_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (_, url):
        await run(capsys, url, "apply", "-f", manifest(tmp_path, "hello.yaml", HELLO))
        started = time.monotonic()
        code, out, err = await run(capsys, url, "wait", "ksvc", "hello", "--timeout", "1s")
        assert 1.0 <= time.monotonic() - started < 5
        assert (code, out) == (1, "")
        assert err == "error: timed out waiting for the condition on services/hello\n"


async def test_wait_on_a_missing_object_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (_, url):
        started = time.monotonic()
        code, out, err = await run(capsys, url, "wait", "ksvc", "nosuch", "--timeout", "30s")
        assert time.monotonic() - started < 5
        assert (code, out) == (1, "")
        assert err.startswith('Error from server (NotFound): services.serving.knative.dev "nosuch"')
        code, _, err = await run(capsys, url, "wait", "cm", "config-domain")
        assert code == 1 and err == "error: configmaps have no conditions to wait for\n"
        code, _, err = await run(capsys, url, "wait", "pizzas", "x")
        assert code == 1 and 'the server doesn\'t have a resource type "pizzas"' in err


async def test_wait_stops_at_once_when_the_revision_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        await run(capsys, url, "apply", "-f", manifest(tmp_path, "hello.yaml", HELLO))
        waiting = asyncio.create_task(run(capsys, url, "wait", "ksvc", "hello", "--timeout", "60s"))
        await asyncio.sleep(0.3)
        mark(controller, "hello-00001", False, "ExitCode1", "Container failed with: no module x")
        code, out, err = await asyncio.wait_for(waiting, 10)
        assert (code, out) == (1, "")
        assert err == (
            "error: service.serving.knative.dev/hello is not ready: RevisionFailed: "
            'Revision "hello-00001" failed with message: Container failed with: no module x.\n'
        )
        # waiting for the failure itself is met
        code, out, _ = await run(
            capsys, url, "wait", "revision", "hello-00001", "--for", "condition=Ready=False"
        )
        assert (code, out) == (0, "revision.serving.knative.dev/hello-00001 condition met\n")


# -- apply --wait -----------------------------------------------------------------------


async def test_apply_wait_waits_for_the_new_generation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's traffic split: the Service was Ready (v1), and apply --wait must not
    return before the second revision is the ready one."""
    async with control_api(tmp_path) as (controller, url):
        await run(capsys, url, "apply", "-f", manifest(tmp_path, "hello.yaml", HELLO))
        mark(controller, "hello-00001", True)
        split = manifest(tmp_path, "split.yaml", SPLIT)
        waiting = asyncio.create_task(run(capsys, url, "apply", "-f", split, "--wait"))
        await asyncio.sleep(0.6)
        assert not waiting.done()
        mark(controller, "hello-00002", True)
        code, out, err = await asyncio.wait_for(waiting, 10)
        assert (code, err) == (0, "")
        assert out == (
            "service.serving.knative.dev/hello configured\n"
            "service.serving.knative.dev/hello condition met\n"
        )


async def test_apply_wait_skips_what_has_no_conditions_and_names_generated_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        both = manifest(
            tmp_path,
            "both.yaml",
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {a: "1"}
            ---
            apiVersion: serving.knative.dev/v1
            kind: Service
            metadata: {generateName: gen-}
            spec:
              template:
                spec:
                  containers: [{image: x, command: ["python", "app.py"]}]
            """,
        )
        waiting = asyncio.create_task(run(capsys, url, "apply", "-f", both, "--wait"))
        await asyncio.sleep(0.4)
        [svc] = controller.get("ksvc", "default")
        name = svc["metadata"]["name"]
        mark(controller, f"{name}-00001", True)
        code, out, err = await asyncio.wait_for(waiting, 10)
        assert (code, err) == (0, "")
        assert out == (
            "configmap/settings created\n"
            f"service.serving.knative.dev/{name} created\n"
            f"service.serving.knative.dev/{name} condition met\n"
        )


async def test_apply_wait_fails_at_once_with_the_reason_or_times_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        hello = manifest(tmp_path, "hello.yaml", HELLO)
        started = time.monotonic()
        code, out, err = await run(capsys, url, "apply", "-f", hello, "--wait", "--timeout", "1")
        assert 1.0 <= time.monotonic() - started < 5
        assert code == 1 and out == "service.serving.knative.dev/hello created\n"
        assert err == "error: timed out waiting for the condition on services/hello\n"

        waiting = asyncio.create_task(run(capsys, url, "apply", "-f", hello, "--wait"))
        await asyncio.sleep(0.3)
        mark(controller, "hello-00001", False, "ExitCode3", "Container failed with: boom")
        code, out, err = await asyncio.wait_for(waiting, 10)
        assert code == 1 and out == "service.serving.knative.dev/hello unchanged\n"
        assert err.startswith("error: service.serving.knative.dev/hello is not ready: ")
        assert "RevisionFailed" in err and "Container failed with: boom" in err, err


# -- get, delete, apply: output and errors ------------------------------------------------


async def test_get_all_namespaces_shows_the_namespace_and_wide_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        await run(capsys, url, "apply", "-f", manifest(tmp_path, "hello.yaml", HELLO))
        mark(
            controller, "hello-00001", False, "ExitCode1", "Container failed with:\nline 1\nline 2"
        )

        code, out, _ = await run(capsys, url, "get", "ksvc", "-A")
        lines = out.splitlines()
        assert code == 0 and lines[0].split() == [
            "NAMESPACE", "NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"
        ]  # fmt: skip
        assert lines[1].split()[:2] == ["default", "hello"]
        assert lines[1].split()[-2:] == ["False", "RevisionFailed"]

        code, out, _ = await run(capsys, url, "get", "revisions", "-o", "wide")
        header, row = out.splitlines()
        assert header.split()[-1] == "MESSAGE" and "NAMESPACE" not in header
        assert " ExitCode1 " in row
        assert row[header.index("MESSAGE") :] == "Container failed with: line 1 line 2"

        code, out, _ = await run(capsys, url, "get", "ksvc", "-o", "wide")
        header, row = out.splitlines()
        assert row[header.index("MESSAGE") :].startswith('Revision "hello-00001" failed')

        cm = manifest(tmp_path, "cm.yaml", "{apiVersion: v1, kind: ConfigMap, metadata: {name: s}}")
        await run(capsys, url, "apply", "-f", cm)
        code, out, _ = await run(capsys, url, "get", "cm", "-A", "-o", "wide")
        header, row = out.splitlines()
        assert header.split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
        assert row.split()[:3] == ["default", "s", "0"]


async def test_not_found_is_an_error_for_every_kind_and_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path, replicas=True) as (_, url):
        for kind, words in [
            ("ksvc", 'services.serving.knative.dev "nosuch" not found'),
            ("pods", 'pods "nosuch" not found'),
        ]:
            for output in ("table", "wide", "json", "yaml"):
                code, out, err = await run(capsys, url, "get", kind, "nosuch", "-o", output)
                assert (code, out) == (1, ""), (kind, output)
                assert err.startswith(f"Error from server (NotFound): {words}"), err

        code, out, err = await run(capsys, url, "get", "pods", "x", "-A")
        assert (code, out) == (1, "")
        assert err == "error: a resource cannot be retrieved by name across all namespaces\n"

        code, out, err = await run(capsys, url, "delete", "ksvc", "nosuch")
        assert (code, out) == (1, "")
        assert err.startswith('Error from server (NotFound): services.serving.knative.dev "nosuch"')

        code, out, err = await run(capsys, url, "get", "pizzas")
        assert code == 1 and out == "" and 'resource type "pizzas"' in err


async def test_delete_f_reports_each_missing_object_on_stderr_and_deletes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        hello = manifest(tmp_path, "hello.yaml", HELLO)
        cm = """\
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: gone}
            data: {a: "1"}
            """
        both = manifest(tmp_path, "both.yaml", textwrap.dedent(cm) + "---\n" + HELLO)
        await run(capsys, url, "apply", "-f", hello)
        code, out, err = await run(capsys, url, "delete", "-f", both)
        assert code == 1
        assert out == 'service.serving.knative.dev "hello" deleted\n'
        assert err.startswith('Error from server (NotFound): configmaps "gone" not found'), err
        assert controller.get("ksvc", "default") == []

        code, out, err = await run(capsys, url, "delete", "-f", hello)
        assert (code, out) == (1, "")
        assert err.startswith('Error from server (NotFound): services.serving.knative.dev "hello"')


async def test_apply_errors_go_to_stderr_and_apply_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path) as (controller, url):
        bad = manifest(tmp_path, "bad.yaml", HELLO.replace("containers:", "containerz:"))
        code, out, err = await run(capsys, url, "apply", "-f", bad, "--wait")
        assert (code, out) == (1, "")
        assert err.startswith("error: ") and "containerz" in err, err
        assert controller.get("ksvc", "default") == []


# -- real replicas ------------------------------------------------------------------------


FAILING = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: crash}
spec:
  template:
    spec:
      containers:
        - image: x
          command: ["python", "-c", "import sys; print('cannot open the database'); sys.exit(3)"]
"""


@pytest.mark.process
async def test_a_crashing_app_fails_apply_wait_at_once_with_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path, replicas=True) as (_, url):
        started = time.monotonic()
        crash = manifest(tmp_path, "crash.yaml", FAILING)
        code, out, err = await run(capsys, url, "apply", "-f", crash, "--wait", "--timeout", "50s")
        assert time.monotonic() - started < 30
        assert code == 1 and out == "service.serving.knative.dev/crash created\n"
        assert "crash is not ready: RevisionFailed" in err and "cannot open the database" in err

        code, out, _ = await run(capsys, url, "get", "revisions", "-o", "wide")
        header, row = out.splitlines()
        assert "ExitCode3" in row.split()
        assert "cannot open the database" in row[header.index("MESSAGE") :]


@pytest.mark.process
async def test_pods_of_a_ready_service_in_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with control_api(tmp_path, replicas=True) as (_, url):
        hello = manifest(tmp_path, "hello.yaml", HELLO)
        code, out, err = await run(capsys, url, "apply", "-f", hello, "--wait", "--timeout", "50s")
        assert (code, err) == (0, ""), err
        assert out.splitlines()[-1] == "service.serving.knative.dev/hello condition met"

        code, out, _ = await run(capsys, url, "get", "pods", "-A", "-o", "wide")
        header, row = out.splitlines()
        assert header.split() == [
            "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"
        ]  # fmt: skip
        assert row.split()[0] == "default" and row.split()[1].startswith("hello-00001-deployment-")
        pod = row.split()[1]

        code, out, _ = await run(capsys, url, "get", "pods", pod, "-o", "json")
        assert code == 0 and json.loads(out)["metadata"]["name"] == pod
        code, out, _ = await run(capsys, url, "get", "pods", "-o", "yaml")
        assert code == 0 and [p["metadata"]["name"] for p in yaml.safe_load(out)["items"]] == [pod]


# -- the activators' sync ---------------------------------------------------------------


async def test_synced_waits_for_every_activator_that_follows_the_state(
    tmp_path: Path,
) -> None:
    """What ``wait`` asks last: a request sent after it must find the new state routed."""
    hub = StateHub(Controller(0.0))
    assert await hub.wait_synced(0.1)  # nobody follows yet
    await hub.wait_past(0, 0, client="activator-0")
    await hub.wait_past(0, 0, client="activator-1")
    hub.snapshot = Snapshot(version=1)
    assert not await hub.wait_synced(0.2)
    later = asyncio.create_task(hub.wait_synced(5))
    await hub.wait_past(1, 0, client="activator-0")
    await asyncio.sleep(0.05)
    assert not later.done()
    await hub.wait_past(1, 0, client="activator-1")
    assert await asyncio.wait_for(later, 1)

    async with control_api(tmp_path) as (_, url):
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{url}/v1/synced?within=1")
            assert r.status_code == 401
            r = await client.get(f"{url}/v1/synced?within=x", headers=access.headers(TOKEN))
            assert r.status_code == 400
            r = await client.get(f"{url}/v1/synced?within=1", headers=access.headers(TOKEN))
            assert r.json() == {"synced": True}


def test_pods_are_listed_by_namespace_then_name_as_kubectl_lists_them() -> None:
    """Whatever order the runtime keeps its replicas in (revision by revision, in the
    order they were made), ``get pods`` lists them as the API server does."""

    def view(namespace: str, name: str) -> SimpleNamespace:
        return SimpleNamespace(
            name=name, pod=object(), revision=SimpleNamespace(namespace=namespace, name="r")
        )

    hub = StateHub(Controller(now=0.0))
    made = [view("default", "zeta-1"), view("a-team", "omega"), view("default", "alpha-1")]
    hub.runtime = SimpleNamespace(pods=lambda: made)  # type: ignore[assignment]
    listed = [(p.revision.namespace, p.name) for p in hub._pods(None, None)]
    assert listed == [("a-team", "omega"), ("default", "alpha-1"), ("default", "zeta-1")]


@pytest.mark.process
async def test_apply_answers_once_the_activators_route_by_it(tmp_path: Path) -> None:
    """A request sent the moment ``zeroserve apply`` returns must find the new route
    (and be held for the revision), not a 404 from an activator a long-poll behind."""
    controller = Controller(time.time())
    hub = StateHub(controller)
    runtime = LocalRuntime(on_change=hub.runtime_changed, log_dir=tmp_path)
    hub.attach(runtime)
    runner, port = await serve(ControlAPI(hub, controller, runtime, token=TOKEN), "127.0.0.1", 0)
    try:
        await hub.wait_past(hub.snapshot.version, 0, client="activator-0")
        async with httpx.AsyncClient(headers=access.headers(TOKEN)) as client:
            body = {"file": "hello.yaml", "yaml": HELLO}
            applying = asyncio.create_task(
                client.post(f"http://127.0.0.1:{port}/v1/apply", json=body)
            )
            await asyncio.sleep(0.2)
            assert not applying.done(), "apply answered before the activator had the route"
            seen = hub.snapshot
            assert [r.name for r in seen.routes] == ["hello"]
            await hub.wait_past(seen.version, 0, client="activator-0")
            r = await asyncio.wait_for(applying, 1)
            assert r.json()["lines"] == ["service.serving.knative.dev/hello created"]
    finally:
        await runtime.close()
        hub.close()
        await stop(runner)
