"""The tracing switch (zeroserve/tracing.py): nothing of OpenTelemetry while off, a live
change replaces the provider, a missing ``tracing`` extra is named (docs/observability.md,
"Tracing")."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT, qp_env, spawn_queue_proxy, stop_process
from zeroserve import tracing as tracing_module
from zeroserve.observability import ObservabilityConfig
from zeroserve.tracing import EXTRA_HINT, Tracing, TracingUnavailable

ON = ObservabilityConfig(
    tracing_protocol="http/protobuf",
    tracing_endpoint="http://127.0.0.1:9/v1/traces",
    tracing_sampling_rate=1.0,
)
OFF = ObservabilityConfig()


@pytest.mark.process
def test_hops_with_tracing_off_import_no_opentelemetry_and_pass_trace_headers_untouched() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.hops_off"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["otel"] == []
    assert result["headers"]["traceparent"] == (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )


def test_off_has_no_tracer_and_on_makes_one() -> None:
    t = Tracing({"service.name": "test"}, "test")
    t.start(OFF)
    assert t.tracer is None and not t.on
    t.configure(ON)
    first = t.tracer
    assert first is not None
    t.configure(ON)  # the same settings again: the same provider
    assert t.tracer is first
    t.configure(
        ObservabilityConfig(
            tracing_protocol="http/protobuf",
            tracing_endpoint=ON.tracing_endpoint,
            tracing_sampling_rate=0.5,
        )
    )
    assert t.tracer is not None and t.tracer is not first
    assert t._retiring == [first]  # shut down after RETIRE_GRACE, off the event loop
    t.configure(OFF)
    assert t.tracer is None
    t.close()
    assert t._retiring == []


def test_an_unknown_protocol_is_refused() -> None:
    class Settings:
        tracing_protocol = "zipkin"
        tracing_endpoint = ""
        tracing_sampling_rate = 1.0

    with pytest.raises(ValueError, match="tracing-protocol: must be none or http/protobuf"):
        Tracing({}, "test").start(Settings())


def test_without_the_extra_a_start_fails_naming_it_and_a_live_change_keeps_tracing_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "zeroserve.otel", None)  # import fails as if missing
    t = Tracing({}, "test")
    with pytest.raises(TracingUnavailable, match=r"the tracing extra: pip install 'zeroserve\["):
        t.start(ON)
    assert t.tracer is None
    with caplog.at_level(logging.ERROR, logger=tracing_module.__name__):
        t.configure(ON)
    assert t.tracer is None
    assert EXTRA_HINT in caplog.text and "tracing stays off" in caplog.text


@pytest.mark.process
async def test_a_queue_proxy_started_with_tracing_on_and_no_opentelemetry_exits_naming_the_extra(
    tmp_path: Path,
) -> None:
    # a package named opentelemetry that cannot be imported stands in for a missing one
    fake = tmp_path / "site" / "opentelemetry"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named opentelemetry')\n")
    pythonpath = os.pathsep.join([str(fake.parent), str(ROOT)])
    env = qp_env(1234, OBSERVABILITY_CONFIG=ON.to_env(), PYTHONPATH=pythonpath)
    log = tmp_path / "qp.log"
    proc = await spawn_queue_proxy(env, log)
    try:
        assert proc.stdout is not None
        assert await proc.stdout.read() == b""  # it never listened
        assert await proc.wait() == 1
    finally:
        await stop_process(proc, grace=5)
    assert (
        f"queue-proxy: tracing-protocol http/protobuf needs the OpenTelemetry packages (the tracing extra: {EXTRA_HINT})"
        in log.read_text()
    )
