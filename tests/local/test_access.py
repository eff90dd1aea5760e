"""The control API is its owner's: the token, its file, the 401 answer, and every caller
that carries it (the data-plane helpers, the ``zeroserve`` client)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import pytest

from autoscaler.config import parse_args as autoscaler_args
from zeroserve import cli
from zeroserve.local import access
from zeroserve.local.control import ControlAPI, serve, stop
from zeroserve.local.protocol import ScaleRequestError, StateFollower, post_scale
from zeroserve.local.replica import (
    ContainerProcess,
    Replica,
    ReplicaSpec,
    init_container_env,
    sidecar_env,
)
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.state import StateHub
from zeroserve.local.up import Up, UpError, UpOptions, connect_host, curl_lines, is_loopback
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey

TOKEN = "the-token"
CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {stable-window: 20s}
"""
SERVICE = (Path(__file__).resolve().parents[2] / "examples" / "helloworld.yaml").read_text()


@asynccontextmanager
async def control_api(tmp_path: Path) -> AsyncIterator[tuple[ControlAPI, str]]:
    controller = Controller(0.0)
    hub = StateHub(controller)
    runtime = LocalRuntime(on_change=hub.runtime_changed, log_dir=tmp_path)
    api = ControlAPI(hub, controller, runtime, token=TOKEN)
    hub.attach(runtime)
    runner, port = await serve(api, "127.0.0.1", 0)
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        await runtime.close()
        hub.close()
        await stop(runner)


# -- the server ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/apply", {"file": "svc.yaml", "yaml": SERVICE}),
        ("POST", "/v1/delete", {"file": "svc.yaml", "yaml": SERVICE}),
        ("POST", "/v1/scale", {"namespace": "default", "revision": "x", "replicas": 1}),
        ("POST", "/v1/figures", {"figures": []}),
        ("DELETE", "/v1/objects/ksvc/default/helloworld-go", None),
        ("GET", "/v1/objects/ksvc", None),
        ("GET", "/v1/table/ksvc", None),
        ("GET", "/v1/tree/default/helloworld-go", None),
        ("GET", "/v1/pods", None),
        ("GET", "/v1/standby", None),
        ("GET", "/v1/state?since=-1&wait=0", None),
        ("GET", "/no/such/path", None),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Bearer", f"Basic {TOKEN}", TOKEN]
)
async def test_a_call_without_the_token_gets_401_and_changes_nothing(
    tmp_path: Path, method: str, path: str, body: object, authorization: str | None
) -> None:
    async with control_api(tmp_path) as (api, url), httpx.AsyncClient() as client:
        api.token_file = "/run/user/1000/zeroserve/control-8090.json"
        headers = {} if authorization is None else {"Authorization": authorization}
        r = await client.request(method, url + path, json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        error = r.json()["error"]
        # says how to get the token
        assert "Authorization: Bearer <token>" in error and api.token_file in error, error
        assert api.controller.get("ksvc") == []


async def test_the_right_token_is_let_through_and_healthz_stays_open(tmp_path: Path) -> None:
    async with control_api(tmp_path) as (api, url), httpx.AsyncClient() as client:
        assert (await client.get(url + "/healthz")).text == "ok"
        auth = access.headers(TOKEN)
        r = await client.post(
            url + "/v1/apply", json={"file": "cm.yaml", "yaml": CONFIG_MAP}, headers=auth
        )
        assert r.status_code == 200, r.text
        assert api.controller.config_data("config-autoscaler") == {"stable-window": "20s"}
        r = await client.get(url + "/v1/objects/ksvc", headers={"authorization": f"bearer {TOKEN}"})
        assert r.json() == {"items": []}


@pytest.mark.process
async def test_what_the_owner_applies_names_them_creator(tmp_path: Path) -> None:
    """The token's holder is the OS user running zeroserve: Knative's creator and
    lastModifier annotations name them."""
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    async with control_api(tmp_path) as (api, url), httpx.AsyncClient() as client:
        r = await client.post(
            url + "/v1/apply",
            json={"file": "svc.yaml", "yaml": SERVICE},
            headers=access.headers(TOKEN),
        )
        assert r.status_code == 200, r.text
        [ksvc] = api.controller.get("ksvc", "default", "helloworld-go")
        annotations = ksvc["metadata"]["annotations"]
        assert annotations["serving.knative.dev/creator"] == me
        assert annotations["serving.knative.dev/lastModifier"] == me


def test_the_control_api_refuses_to_run_without_a_token(tmp_path: Path) -> None:
    controller = Controller(0.0)
    hub = StateHub(controller)
    with pytest.raises(ValueError, match="token"):
        ControlAPI(hub, controller, LocalRuntime(on_change=lambda: None), token="")


def test_tokens_are_compared_whole() -> None:
    assert access.authorized(f"Bearer {TOKEN}", TOKEN)
    assert access.authorized(f"bearer  {TOKEN} ", TOKEN)
    for header in (None, "", TOKEN, f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer é"):
        assert not access.authorized(header, TOKEN), header
    assert len(access.new_token()) >= 40 and access.new_token() != access.new_token()


# -- the data plane's calls carry it --------------------------------------------------


async def test_the_state_follower_and_scale_requests_send_the_childs_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with control_api(tmp_path) as (_, url), aiohttp.ClientSession() as session:
        monkeypatch.setenv(access.TOKEN_ENV, TOKEN)  # as zeroserve up starts its children
        follower = StateFollower(url, session, lambda s: None)
        follower.start()
        try:
            await follower.synced.wait()  # within the test's timeout
        finally:
            await follower.stop()
        with pytest.raises(ScaleRequestError, match="404"):  # past the token check
            await post_scale(session, url, RevisionKey("default", "nope"), 1)

        monkeypatch.setenv(access.TOKEN_ENV, "wrong")
        with pytest.raises(ScaleRequestError, match="401"):
            await post_scale(session, url, RevisionKey("default", "nope"), 1)
        monkeypatch.delenv(access.TOKEN_ENV)
        follower = StateFollower(url, session, lambda s: None)
        assert follower.headers == {}
        follower.start()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await follower.synced.wait()
        finally:
            await follower.stop()
        # an explicit token wins over the environment
        with pytest.raises(ScaleRequestError, match="404"):
            await post_scale(session, url, RevisionKey("default", "nope"), 1, token=TOKEN)


def test_no_process_of_a_replica_gets_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(access.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(access.CLIENT_TOKEN_ENV, TOKEN)
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    spec = ReplicaSpec(command=["app"], service="s", configuration="s", revision="s-00001")
    replica = Replica(spec, name="s-00001-deployment-x")
    c = ContainerProcess("c", ["x"], {})
    for env in (
        replica.app_env(),
        replica.queue_proxy_env(),
        sidecar_env(spec, c),
        init_container_env(c),
    ):
        assert env["SOMETHING_ELSE"] == "kept"
        assert TOKEN not in env.values(), env


# -- the token file ------------------------------------------------------------------


def test_the_token_file_is_private_and_found_by_port(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    path = access.write_token_file(8090, "http://127.0.0.1:8090", TOKEN, env)
    assert path == tmp_path / "zeroserve" / "control-8090.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["url"] == "http://127.0.0.1:8090"
    assert access.read_token_file(8090, env) == TOKEN
    assert access.read_token_file(8091, env) is None
    assert access.find_token("http://127.0.0.1:8090", env) == TOKEN
    assert access.find_token("http://127.0.0.1:8090", {**env, "ZEROSERVE_TOKEN": "x"}) == "x"
    # a later run on the same port replaces it; the earlier run's exit leaves it alone
    access.write_token_file(8090, "http://127.0.0.1:8090", "newer", env)
    access.remove_token_file(path, TOKEN)
    assert access.read_token_file(8090, env) == "newer"
    access.remove_token_file(path, "newer")
    assert not path.exists()


def test_a_loose_token_directory_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "zeroserve").mkdir(mode=0o755)
    (tmp_path / "zeroserve").chmod(0o755)
    access.write_token_file(1, "u", TOKEN, {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert stat.S_IMODE((tmp_path / "zeroserve").stat().st_mode) == 0o700


def test_without_xdg_runtime_dir_the_token_is_under_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert access.token_path(8090, env) == tmp_path / ".zeroserve" / "control-8090.json"
    assert access.token_path(8090, {"XDG_RUNTIME_DIR": "", **env}).parent.name == ".zeroserve"


def test_a_token_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    (tmp_path / "zeroserve").mkdir()
    (tmp_path / "zeroserve" / "control-8090.json").write_text("not json")
    with pytest.raises(access.TokenFileError, match=r"control-8090\.json"):
        access.read_token_file(8090, env)


# -- the client -----------------------------------------------------------------------


async def test_the_client_finds_the_token_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("ZEROSERVE_TOKEN", raising=False)
    async with control_api(tmp_path) as (_, url):
        port = access.url_port(url)
        run = asyncio.to_thread

        # no file: says what to do
        assert await run(cli.main, ["get", "ksvc", "--server", url]) == 1
        err = capsys.readouterr().err
        assert f"control-{port}.json does not exist" in err and "--token" in err, err

        access.write_token_file(port, url, TOKEN)
        assert await run(cli.main, ["get", "ksvc", "--server", url]) == 0
        assert "No resources found" in capsys.readouterr().out

        # a wrong token (another run's): a 401, said plainly
        assert await run(cli.main, ["get", "ksvc", "--server", url, "--token", "old"]) == 1
        assert "refused the token (401)" in capsys.readouterr().err
        monkeypatch.setenv("ZEROSERVE_TOKEN", "old")
        assert await run(cli.main, ["get", "ksvc", "--server", url]) == 1
        capsys.readouterr()
        assert await run(cli.main, ["get", "ksvc", "--server", url, "--token", TOKEN]) == 0


# -- addresses ------------------------------------------------------------------------


def test_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.com")
    assert connect_host("0.0.0.0") == "127.0.0.1" and connect_host("::") == "[::1]"
    assert connect_host("10.1.2.3") == "10.1.2.3" and connect_host("fe80::1") == "[fe80::1]"


def test_the_autoscaler_listens_on_loopback_in_local_mode_unless_told() -> None:
    assert autoscaler_args(["--control", "http://127.0.0.1:8090"]).host == "127.0.0.1"
    assert autoscaler_args([]).host == "0.0.0.0"
    assert autoscaler_args(["--control", "u", "--host", "::1"]).host == "::1"


def test_curl_hints_send_cluster_local_services_to_the_local_gateway() -> None:
    assert curl_lines("http://hello.default.svc.cluster.local", 8080, "0.0.0.0", 8081) == [
        "curl -H 'Host: hello.default.svc.cluster.local' http://127.0.0.1:8081"
    ]
    assert curl_lines("http://hello.default.localhost", 8080, "127.0.0.1", 8081) == [
        "curl http://hello.default.localhost:8080",
        "curl -H 'Host: hello.default.localhost' http://127.0.0.1:8080",
    ]
    assert curl_lines("http://hello.default.example.com", 8080, "10.0.0.5", 8081) == [
        "curl -H 'Host: hello.default.example.com' http://10.0.0.5:8080"
    ]


def test_the_local_gateway_cannot_share_the_ingress_port(tmp_path: Path) -> None:
    with pytest.raises(UpError, match="--local-port must differ from --port"):
        Up(UpOptions(port=9000, local_port=9000, log_dir=tmp_path))
    Up(UpOptions(port=0, local_port=0, log_dir=tmp_path))  # both picked: fine
