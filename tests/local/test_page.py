"""The live page on the control API, in memory: what ``/v1/overview`` says (from the
controller's objects, the replicas and the figures), who may read it (the page token,
the control token), the page's files, and ``POST /v1/figures`` (``zeroserve.local.page``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from zeroserve.local import access
from zeroserve.local.control import ControlAPI, serve, stop
from zeroserve.local.figures import FigureHistory, Figures, encode_batch
from zeroserve.local.page import OPEN_PATHS, overview, page_url
from zeroserve.local.runtime import LocalRuntime
from zeroserve.local.state import StateHub
from zeroserve.serving.controller import Controller
from zeroserve.topology import RevisionKey

TOKEN = "the-control-token"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = RevisionKey("default", "hello-00001")


def figures(t: float, conc: float = 2.0, **kw: Any) -> Figures:
    base: dict[str, Any] = dict(
        time=t,
        stable_concurrency=conc,
        panic_concurrency=conc + 1,
        stable_rps=conc * 5,
        panic_rps=conc * 6,
        desired=2,
        ready=1,
        panic=True,
        target=7.0,
    )
    base.update(kw)
    return Figures(**base)


def service(name: str, traffic: list[dict[str, Any]], ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": name},
        "status": {
            "url": f"http://{name}.default.localhost",
            "conditions": [{"type": "Ready", "status": ready, "reason": "R", "message": "a  b"}],
            "traffic": traffic,
        },
    }


def revision(
    name: str, created: str, labels: dict[str, str], desired: int | None
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True"}]}
    if desired is not None:
        status["desiredReplicas"] = desired
    return {
        "metadata": {
            "namespace": "default",
            "name": name,
            "creationTimestamp": created,
            "labels": labels,
        },
        "status": status,
    }


def test_overview_groups_revisions_under_their_service_with_traffic_and_replicas() -> None:
    svc = {"serving.knative.dev/service": "hello", "serving.knative.dev/configuration": "hello"}
    h = FigureHistory()
    h.add(HELLO, figures(100))
    h.add(RevisionKey("default", "gone-00001"), figures(100))
    data = overview(
        [
            service(
                "hello",
                [
                    {"revisionName": "hello-00002", "percent": 80, "latestRevision": True},
                    {
                        "revisionName": "hello-00001",
                        "percent": 20,
                        "tag": "current",
                        "url": "http://current-hello",
                    },
                    {"revisionName": "hello-00001", "percent": 0, "tag": "old"},
                ],
            )
        ],
        [
            revision("hello-00001", "2026-01-01T00:00:00Z", svc, 2),
            revision("hello-00002", "2026-01-01T00:01:00Z", svc, None),
            revision(
                "lone-00001",
                "2026-01-01T00:00:00Z",
                {"serving.knative.dev/configuration": "lone"},
                0,
            ),
        ],
        [
            ("default", "hello-00001", True),
            ("default", "hello-00001", False),
            ("default", "hello-00002", True),
        ],
        h.since(0, now=101),
        seq=h.seq,
        now=101.0,
        window=h.window,
    )
    assert (data["seq"], data["now"], data["window"]) == (2, 101.0, 300.0)
    hello, lone = data["services"]
    assert (hello["kind"], hello["name"], hello["url"], hello["ready"], hello["message"]) == (
        "Service",
        "hello",
        "http://hello.default.localhost",
        "True",
        "a b",
    )
    assert hello["traffic"][1] == {
        "revision": "hello-00001",
        "percent": 20,
        "tag": "current",
        "url": "http://current-hello",
        "latest": False,
    }
    # newest first; the percent of every target (tagged ones too); desired from the status; pods counted
    r2, r1 = hello["revisions"]
    assert (r2["name"], r2["percent"], r2["tags"], r2["desired"], r2["readyPods"], r2["pods"]) == (
        "hello-00002",
        80,
        [],
        None,
        1,
        1,
    )
    assert (r1["name"], r1["percent"], r1["tags"], r1["desired"], r1["readyPods"], r1["pods"]) == (
        "hello-00001",
        20,
        ["current", "old"],
        2,
        1,
        2,
    )
    # a Configuration without a Service gets a group of its own
    assert (lone["kind"], lone["name"], [r["name"] for r in lone["revisions"]]) == (
        "Configuration",
        "lone",
        ["lone-00001"],
    )
    points = {(f["namespace"], f["revision"]): f["points"] for f in data["figures"]}
    assert points[("default", "hello-00001")] == [{"seq": 1, **figures(100).to_json()}]


@asynccontextmanager
async def control_api(tmp_path: Path) -> AsyncIterator[tuple[ControlAPI, str]]:
    """A control API whose controller knows examples/hello.yaml's revision; no replica
    runs (the runtime is not attached)."""
    controller = Controller(time.time())
    hub = StateHub(controller)
    runtime = LocalRuntime(on_change=hub.runtime_changed, log_dir=tmp_path)
    api = ControlAPI(hub, controller, runtime, token=TOKEN)
    runner, port = await serve(api, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as c:
            body = {"file": "hello.yaml", "yaml": (EXAMPLES / "hello.yaml").read_text()}
            r = await c.post(f"{url}/v1/apply", json=body, headers=access.headers(TOKEN))
            assert r.status_code == 200, r.text
        yield api, url
    finally:
        await runtime.close()
        hub.close()
        await stop(runner)


async def test_the_page_and_its_files_need_no_token_and_carry_a_strict_policy(
    tmp_path: Path,
) -> None:
    async with control_api(tmp_path) as (_api, url), httpx.AsyncClient(timeout=10) as c:
        page = await c.get(f"{url}/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/page/app.js"' in page.text and "token" not in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        js = await c.get(f"{url}/page/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "/v1/overview?since=" in js.text and "Authorization" in js.text
        # no external download: nothing in the page's files names another origin
        for name in ("", "page/app.js", "page/style.css"):
            text = (await c.get(f"{url}/{name}")).text
            assert "https://" not in text and "//cdn" not in text
        assert (await c.get(f"{url}/page/style.css")).headers["content-type"].startswith("text/css")
        for missing in ("/page/other.js", "/page/index.html", "/page/..%2Fpage.py"):
            r = await c.get(f"{url}{missing}")
            assert r.status_code in (401, 404), (missing, r.status_code)
            assert "import" not in r.text


async def test_the_data_wants_the_page_token_which_reads_only(tmp_path: Path) -> None:
    async with control_api(tmp_path) as (api, url), httpx.AsyncClient(timeout=10) as c:
        page_token = api.page.page_token
        assert page_token and page_token != TOKEN
        assert page_url(url, page_token) == f"{url}/#token={page_token}"
        for headers in ({}, access.headers("wrong")):
            r = await c.get(f"{url}/v1/overview", headers=headers)
            assert r.status_code == 401
            assert "page token" in r.json()["error"] and "live page:" in r.json()["error"]
        for token in (page_token, TOKEN):
            r = await c.get(f"{url}/v1/overview", headers=access.headers(token))
            assert r.status_code == 200, r.text
            assert [s["name"] for s in r.json()["services"]] == ["hello"]
            assert r.headers["cache-control"] == "no-store"
        r = await c.get(f"{url}/v1/overview?since=x", headers=access.headers(page_token))
        assert r.status_code == 400 and "since" in r.json()["error"]
        # the page token opens nothing else: no apply, no figures, no objects
        body = {"file": "hello.yaml", "yaml": (EXAMPLES / "hello.yaml").read_text()}
        assert (
            await c.post(f"{url}/v1/apply", json=body, headers=access.headers(page_token))
        ).status_code == 401
        assert (
            await c.get(f"{url}/v1/objects/ksvc", headers=access.headers(page_token))
        ).status_code == 401
        batch = encode_batch([(HELLO, figures(time.time()))])
        assert (
            await c.post(f"{url}/v1/figures", json=batch, headers=access.headers(page_token))
        ).status_code == 401
    assert {"/", "/v1/overview"} <= OPEN_PATHS and "/v1/figures" not in OPEN_PATHS


async def test_posted_figures_come_back_numbered_and_only_the_new_ones(tmp_path: Path) -> None:
    async with control_api(tmp_path) as (api, url), httpx.AsyncClient(timeout=10) as c:
        read = access.headers(api.page.page_token)
        write = access.headers(TOKEN)
        now = time.time()
        unknown = RevisionKey("default", "nope-00001")
        r = await c.post(
            f"{url}/v1/figures",
            json=encode_batch([(HELLO, figures(now - 2, 1.0)), (unknown, figures(now))]),
            headers=write,
        )
        assert r.json() == {"taken": 1, "seq": 1}  # an unknown revision's are not kept
        r = await c.post(
            f"{url}/v1/figures", json=encode_batch([(HELLO, figures(now, 4.0))]), headers=write
        )
        assert r.json() == {"taken": 1, "seq": 2}
        first = (await c.get(f"{url}/v1/overview?since=0", headers=read)).json()
        assert first["seq"] == 2
        [entry] = first["figures"]
        assert (entry["namespace"], entry["revision"]) == ("default", "hello-00001")
        assert [(p["seq"], p["stable_concurrency"]) for p in entry["points"]] == [
            (1, 1.0),
            (2, 4.0),
        ]
        again = (await c.get(f"{url}/v1/overview?since=2", headers=read)).json()
        assert again["figures"] == [] and again["seq"] == 2
        r = await c.post(f"{url}/v1/figures", json={"figures": [{"namespace": "x"}]}, headers=write)
        assert (
            r.status_code == 400
            and "bad figures: figures[0]: namespace and revision" in r.json()["error"]
        )


@pytest.mark.parametrize("name", ["index.html", "app.js", "style.css"])
def test_the_page_files_ship_with_the_package(name: str) -> None:
    """pyproject's package-data names what ``LivePage`` serves."""
    import tomllib

    from zeroserve.local.page import PAGE_DIR, STATIC_FILES

    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["zeroserve.local"]
    assert name in STATIC_FILES and (PAGE_DIR / name).is_file()
    assert any(Path("page", name).match(p) for p in patterns)
