"""Init containers and sidecars in a local replica, in memory: what each container runs
with (command, env, working directory, name), how ``get pods`` shows the replica, and
what the revision says when an init container fails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zeroserve.api.objects import Container, ContainerPort, EnvVar, KeyRef, RevisionTemplate
from zeroserve.local.replica import (
    ContainerProcess,
    ContainerRun,
    Replica,
    ReplicaSpec,
    init_container_env,
    sidecar_env,
)
from zeroserve.local.runtime import (
    LocalRuntime,
    RevisionRun,
    RevisionSet,
    _Pod,
    failure_condition,
    init_status,
)
from zeroserve.local.state import StateHub
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionInfo, RevisionKey

from .test_env import NODE, lookup

KEY = RevisionKey("default", "multi-00001")

TEMPLATE = RevisionTemplate(
    containers=(
        Container(
            command=("python", "proxy.py"),
            ports=(ContainerPort(container_port=8080),),
            env=(EnvVar("TARGET", "app"),),
        ),
        Container(
            command=("python", "sidecar.py"),
            args=("--port", "$(PORT)"),
            env=(
                EnvVar("PORT", "8882"),
                EnvVar("PASSWORD", value_from=KeyRef("Secret", "db", "password")),
            ),
            working_dir="/srv/sidecar",
        ),
        Container(name="logger", command=("/bin/cat",)),
    ),
    init_containers=(
        Container(command=("python", "migrate.py"), env=(EnvVar("STEP", "1"),)),
        Container(name="seed", command=("/bin/true",), working_dir="/srv/seed"),
    ),
)


def _set(template: RevisionTemplate, tmp_path: Path) -> RevisionSet:
    run = RevisionRun(
        info=RevisionInfo(KEY, service="multi", configuration="multi"),
        command=tuple(template.container.command),
        template=template,
        container_name="user-container",
    )
    runtime = LocalRuntime(
        on_change=lambda: None, log_dir=tmp_path, lookup=lookup, node=NODE, working_dir="/srv/app"
    )
    return RevisionSet(run, runtime)


def test_init_containers_and_sidecars_become_processes_of_the_replica(tmp_path: Path) -> None:
    spec = _set(TEMPLATE, tmp_path)._spec(_Pod("multi-00001-deployment-abcde"))
    # names as Knative defaults them (zeroserve.serving.revisions.container_names)
    assert [c.name for c in spec.init_containers] == ["init-container-0", "seed"]
    assert [c.name for c in spec.sidecars] == ["user-container-0", "logger"]
    migrate, seed = spec.init_containers
    assert migrate.command == [sys.executable, "migrate.py"]
    assert migrate.env == {"STEP": "1"}
    assert (migrate.working_dir, seed.working_dir) == ("/srv/app", "/srv/seed")
    sidecar, logger = spec.sidecars
    # command + args, python resolved; $(PORT) expands from its own env when it starts
    assert sidecar.command == [sys.executable, "sidecar.py", "--port", "$(PORT)"]
    assert sidecar.env == {"PORT": "8882", "PASSWORD": "s3cret"}  # env.py resolved it
    assert sidecar.working_dir == "/srv/sidecar"
    assert (logger.command, logger.env, logger.working_dir) == (["/bin/cat"], {}, "/srv/app")
    # the serving container is the app, not a sidecar
    assert spec.command == [sys.executable, "proxy.py"]
    assert spec.env == {"TARGET": "app"}


def test_a_template_with_one_container_has_no_sidecars(tmp_path: Path) -> None:
    one = RevisionTemplate(containers=(Container(command=("python", "app.py")),))
    spec = _set(one, tmp_path)._spec(_Pod("multi-00001-deployment-abcde"))
    assert (spec.init_containers, spec.sidecars) == ((), ())


def test_sidecars_get_the_k_variables_but_port_only_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "1234")  # zeroserve's own, never passed on
    monkeypatch.setenv("K_REVISION", "stale")
    spec = ReplicaSpec(command=["app"], service="multi", configuration="multi", revision=KEY.name)
    plain = ContainerProcess("logger", ["/bin/cat"], {"LEVEL": "debug"})
    env = sidecar_env(spec, plain)
    assert "PORT" not in env
    assert (env["K_SERVICE"], env["K_CONFIGURATION"], env["K_REVISION"], env["LEVEL"]) == (
        "multi",
        "multi",
        KEY.name,
        "debug",
    )
    assert sidecar_env(spec, ContainerProcess("s", ["x"], {"PORT": "8882"}))["PORT"] == "8882"
    # init containers are copied as written: no PORT, no K_*
    init = init_container_env(ContainerProcess("migrate", ["x"], {"STEP": "1"}))
    assert init["STEP"] == "1"
    assert not {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"} & set(init)


class _Proc:
    """A finished (``returncode`` set) or running process, as a container run holds it."""

    def __init__(self, returncode: int | None = None) -> None:
        self.returncode = returncode
        self.pid = 0


def _with_replica(
    rs: RevisionSet, pod: _Pod, inits: list[int | None], running: bool, ready: bool
) -> None:
    """``pod`` with a replica whose init containers ended with ``inits`` (None: running)
    and, if ``running``, its long-running containers up (and ``ready``)."""
    names, init_names = rs._container_names()
    replica = Replica(ReplicaSpec(command=["x"]), pod.name)
    replica.init_runs = [
        ContainerRun(n, f"init container {n}", _Proc(code))  # type: ignore[arg-type]
        for n, code in zip(init_names, inits, strict=False)
    ]
    if running:
        replica.runs = {n: ContainerRun(n, n, _Proc()) for n in names}  # type: ignore[arg-type]
        replica.ready = dict.fromkeys(names, ready)
    pod.replica, pod.pending = replica, False


def test_get_pods_counts_the_sidecars_and_shows_the_init_steps(tmp_path: Path) -> None:
    rs = _set(TEMPLATE, tmp_path)
    rs.runtime.sets[KEY] = rs
    pods = [_Pod(f"multi-00001-deployment-{c}") for c in "abcde"]
    rs.pods = pods
    running, init, failed, looping, starting = pods
    _with_replica(rs, running, [0, 0], running=True, ready=True)
    running.ready = True
    _with_replica(rs, init, [0, None], running=False, ready=False)
    rs._init_step(init, 1, 2)
    for pod, failures in ((failed, 1), (looping, 3)):
        _with_replica(rs, pod, [1], running=False, ready=False)
        assert pod.replica is not None
        pod.exit = (pod.replica.init_runs[0].what, 1)
        pod.init_failures = failures
        pod.init, pod.crashlooping = init_status(failures), True
    _with_replica(rs, starting, [0, 0], running=True, ready=False)  # all done: the app starts
    assert [v.status for v in rs.views()] == [
        "Running",
        "Init:1/2",
        "Init:Error",
        "Init:CrashLoopBackOff",
        "Running",  # kubectl: Running, 0/4 ready
    ]
    looping_view = rs.views()[3].pod
    assert looping_view is not None
    assert looping_view.init_containers[0].state.reason == "CrashLoopBackOff"
    hub = StateHub(Controller(now=0.0), clock=lambda: running.started_at)
    hub.runtime = rs.runtime
    headers, rows = hub.pods_table(None, None)
    assert headers[1] == "READY"
    # app + two sidecars + queue-proxy, as kubectl counts a pod's containers
    assert [r[1] for r in rows] == ["4/4", "0/4", "0/4", "0/4", "0/4"]


def test_a_failed_init_container_fails_the_revision_like_a_crashed_container() -> None:
    assert failure_condition(("init container migrate", 1), "no schema | bye", "x") == (
        "ExitCode1",
        "Init container migrate failed with: no schema | bye",
    )
    assert failure_condition(("app", 3), "cannot open the database", "x") == (
        "ExitCode3",
        "Container failed with: cannot open the database",
    )
    assert failure_condition(
        ("sidecar logger", 2), "", "the sidecar logger exited with code 2"
    ) == (
        "ExitCode2",
        "the sidecar logger exited with code 2",
    )
    assert failure_condition(("queue-proxy", 1), "", "gone")[0] == "ContainerFailed"
    assert failure_condition(None, "", "cannot start")[0] == "ContainerFailed"
    assert [init_status(n) for n in (1, 2, 5)] == [
        "Init:Error",
        "Init:CrashLoopBackOff",
        "Init:CrashLoopBackOff",
    ]
