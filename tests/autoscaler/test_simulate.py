"""The simulator: traces in, the real autoscaler run on a fake clock, figures out.

The step-trace expectations are derived by hand from the KPA rules (in
knative/serving: the decider, ``pkg/autoscaler/scaling/autoscaler.go``; ticks
and pokes, ``pkg/autoscaler/scaling/multiscaler.go``; the activator's stats,
``pkg/activator/handler/concurrency_reporter.go``; recording and windows,
``pkg/autoscaler/metrics/collector.go`` and ``pkg/autoscaler/aggregation/bucketing.go``;
bounds and the scale-to-zero gate, ``pkg/reconciler/autoscaling/kpa/scaler.go``)
with the default configuration:
containerConcurrency 0 -> per-pod target 100 x 70 % = 70, stable window 60 s,
panic window 6 s, panic threshold 200 %, grace period 30 s, ticks on even
seconds, pods ready 2 s after being asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.simulate.__main__ import main
from autoscaler.simulate.output import PLOT_HINT, TIMELINE_COLUMNS, require_matplotlib
from autoscaler.simulate.run import Run, Settings, SimulationError, default_duration, simulate
from autoscaler.simulate.summary import summarize
from autoscaler.traces import Trace, TraceError, generate, parse_csv, read_csv
from zeroserve.autoscaling.config import AutoscalerConfig

ROOT = Path(__file__).resolve().parents[2]
STEP_CSV = ROOT / "examples" / "traces" / "step.csv"


def trace(unit: str, *rows: tuple[float, float]) -> Trace:
    return Trace(unit, tuple(t for t, _ in rows), tuple(v for _, v in rows), "test")


# -- the step trace, by hand -------------------------------------------------------------

# 200 in flight from t=31 (an odd second: no tick, only the poke can act) to t=150.
STEP = trace("concurrency", (0, 0), (31, 200), (150, 0))


@pytest.fixture(scope="module")
def step_run() -> Run:
    return simulate(STEP, Settings())


def test_step_trace_runs_until_the_revision_has_settled(step_run: Run) -> None:
    # last change 150 + stable window 60 + grace 30 + margin 60
    assert len(step_run.timeline) == 300
    assert step_run.spec.target == pytest.approx(70.0)
    assert {s.needed for s in step_run.timeline[31:150]} == {3}  # ceil(200 / 70)


def test_the_poke_scales_from_zero_without_waiting_for_a_tick(step_run: Run) -> None:
    at = step_run.timeline[31]
    # t=31, no tick: the activator's first stat (concurrency 1) pokes: 1 pod.
    # No replica is ready, so its burst poke (the other 199) is decided at once
    # too: ceil(200 / 70) = 3 pods, all applied at t=31 and ready at t=33.
    assert (at.desired, at.ready, at.starting) == (3, 0, 3)
    assert step_run.timeline[33].ready == 3
    summary = summarize(step_run)
    assert summary["cold_starts"] == [
        {"at_s": 31, "wait_s": 2, "requests": 4000.0}
    ]  # 2 s x 2000 rps


def test_step_up_enters_panic_and_reaches_the_needed_pods(step_run: Run) -> None:
    # t=31: want 3 over max(1, 0 ready) = 3 >= 2 -> panic at once. t=32: the
    # windows hold 200 (t=31, the pokes) and 0 (the first full second less the
    # 200 already reported): 100 -> want 2, 2 / 1 >= 2: still over the
    # threshold; panic keeps the 3. From t=34 the 3 ready pods are enough.
    assert step_run.timeline[31].in_panic
    assert step_run.scale_events[:2] == [(31, 0, 1), (31, 1, 3)]
    summary = summarize(step_run)
    assert summary["shortfalls"] == [
        {
            "at_s": 31,
            "cause": "load increase",
            "ready": 0,
            "needed": 3,
            "reached_after_s": 2,
            "caught_up": True,
        },
    ]
    # Over the threshold last at t=32: panic lasts until the first tick more
    # than a stable window later, t=94 -> seconds 31..93.
    assert summary["panic"] == {"seconds": 63, "episodes": 1}


def test_after_the_load_stops_it_scales_down_then_to_zero(step_run: Run) -> None:
    # The stable average after t=150 is 200 x (210 - t) / 60: want 2 from t=168,
    # 1 from t=190 (ticks), 0 at t=210. Active since t=33, so the gate turns
    # Inactive at once and applies 0 after the 30 s grace period.
    assert step_run.scale_events[2:] == [(168, 3, 2), (190, 2, 1), (240, 1, 0)]
    assert step_run.timeline[210].pa == "Inactive" and step_run.timeline[239].ready == 1
    assert 240 == 150 + 60 + 30  # drop + stable window + grace
    summary = summarize(step_run)
    assert summary["scale_to_zero_events"] == 1
    assert summary["scale_events"] == {"total": 5, "up": 2, "down": 3}


def test_step_pod_seconds_lie_between_need_and_the_peak_held_throughout(step_run: Run) -> None:
    pods = summarize(step_run)["pods"]
    needed = 3 * (150 - 31)
    at_most = 3 * (240 - 31)  # the peak from the first request until zero
    assert pods["needed_pod_seconds"] == needed
    assert needed <= pods["pod_seconds"] <= at_most
    # Exactly, from the scale events: 3 pods for 137 s, 2 for 22 s, 1 for 50 s.
    assert pods["pod_seconds"] == 3 * 137 + 2 * 22 + 50


# -- other behaviour -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "wait"),
    [(0, None), (1, 1), (1.5, 2), (7, 7)],
    ids=["instant", "1s", "fraction-rounds-up", "7s"],
)
def test_cold_start_waits_for_the_pod_start_delay(delay: float, wait: int | None) -> None:
    run = simulate(trace("concurrency", (0, 0), (31, 5), (60, 0)), Settings(pod_start_delay=delay))
    colds = summarize(run)["cold_starts"]
    if wait is None:
        assert colds == []  # the poke's pod is ready in the same second
    else:
        assert [(c["at_s"], c["wait_s"]) for c in colds] == [(31, wait)]


def test_idle_pods_are_halved_each_tick_then_held_until_zero() -> None:
    run = simulate(trace("concurrency", (0, 0)), Settings(initial_pods=4))
    # t=0: max_down = floor(4 / 2) = 2, t=2: 1, t=4: want 0 but Active for less
    # than a stable window -> kept at 1; Inactive at t=60, zero after the grace.
    assert run.scale_events == [(0, 4, 2), (2, 2, 1), (90, 1, 0)]
    assert run.timeline[0].ready == 2  # removed pods go at once


def test_rps_metric_scales_on_requests_per_second() -> None:
    run = simulate(
        trace("rps", (0, 280)),
        Settings(annotations={"autoscaling.knative.dev/metric": "rps"}, duration=120),
    )
    assert run.spec.target == pytest.approx(140.0)  # 200 x 0.7
    assert {s.needed for s in run.timeline} == {2}
    assert run.timeline[-1].desired == 2 and run.timeline[-1].ready == 2


def test_rps_trace_becomes_concurrency_through_the_request_duration() -> None:
    run = simulate(trace("rps", (0, 1000)), Settings(request_duration=0.1, duration=60))
    last = run.timeline[-1]
    assert (last.concurrency, last.load, last.needed) == (
        pytest.approx(100.0),
        pytest.approx(100.0),
        2,
    )
    assert last.ready == 2


def test_max_scale_leaves_a_shortfall_that_ends_only_with_the_load() -> None:
    run = simulate(STEP, Settings(annotations={"autoscaling.knative.dev/max-scale": "2"}))
    [fall] = summarize(run)["shortfalls"]
    assert fall["at_s"] == 31 and not fall["caught_up"]
    assert fall["reached_after_s"] == 150 - 31
    assert max(s.desired for s in run.timeline) == 2


def test_without_scraping_an_idle_revision_gets_no_data_to_decide_on() -> None:
    idle = trace("concurrency", (0, 0))
    scraped = simulate(idle, Settings(initial_pods=2))
    unscraped = simulate(idle, Settings(initial_pods=2, scrape=False))
    assert scraped.timeline[-1].ready == 0
    # Only the activator reports, and it has nothing to say: no valid decision.
    assert {s.decided for s in unscraped.timeline} == {-1}
    assert unscraped.scale_events == []


def test_default_duration_covers_settling_after_the_last_change() -> None:
    config = AutoscalerConfig(scale_to_zero_grace_period=10.0)
    settings = Settings(config=config, annotations={"autoscaling.knative.dev/window": "20s"})
    assert default_duration(STEP, settings.autoscaling(), config) == 150 + 20 + 10 + 60
    day = generate("diurnal:period=600")
    assert default_duration(day, settings.autoscaling(), config) == 600


# -- traces --------------------------------------------------------------------------------


def test_csv_reads_comments_bom_spaces_and_fractional_rows() -> None:
    t = parse_csv("\ufefftime_s, rps\n# ramp\n\n0, 10\n2.5 ,30\n3,0\n", "t.csv")
    assert (t.unit, t.times, t.values) == ("rps", (0.0, 2.5, 3.0), (10.0, 30.0, 0.0))
    # Each second's average: [2, 3) is half 10 and half 30.
    assert t.per_second(5) == [10.0, 10.0, 20.0, 0.0, 0.0]


def test_load_is_zero_before_the_first_row_and_the_last_row_holds() -> None:
    assert trace("concurrency", (2, 7)).per_second(5) == [0.0, 0.0, 7.0, 7.0, 7.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad.csv: empty trace"),
        ("time,rps\n0,1\n", "bad.csv, line 1, column 1: the header must start with 'time_s'"),
        ("time_s,qps\n0,1\n", "bad.csv, line 1, column 2: the second header column must be"),
        ("time_s,rps,x\n", "bad.csv, line 1: the header must have 2 columns"),
        ("time_s,rps\n", "bad.csv: no data rows"),
        (
            "time_s,rps\n0,1\n#\n5,abc\n",
            "bad.csv, line 4, column 2 (rps): must be a number >= 0, got 'abc'",
        ),
        (
            "time_s,concurrency\n0,-3\n",
            "bad.csv, line 2, column 2 (concurrency): must be a number >= 0",
        ),
        (
            "time_s,rps\n0,nan\n",
            "bad.csv, line 2, column 2 (rps): must be a number >= 0, got 'nan'",
        ),
        ("time_s,rps\n-1,1\n", "bad.csv, line 2, column 1 (time_s): must be a number >= 0"),
        (
            "time_s,rps\n0,1\n0,2\n",
            "bad.csv, line 3, column 1 (time_s): must be greater than the previous",
        ),
        ("time_s,rps\n0,1,2\n", "bad.csv, line 2: expected 2 columns (time_s,rps), got 3"),
    ],
    ids=[
        "empty",
        "header-time",
        "header-unit",
        "header-width",
        "no-rows",
        "not-a-number",
        "negative",
        "nan",
        "negative-time",
        "time-not-increasing",
        "row-width",
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as e:
        read_csv(path)
    assert str(e.value).replace(str(tmp_path) + "/", "").startswith(message), str(e.value)


def test_unreadable_trace_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"missing\.csv: cannot read"):
        read_csv(tmp_path / "missing.csv")


def test_step_and_spike_generators() -> None:
    step = generate("step:from=2,to=9,at=3,until=5")
    assert step.per_second(7) == [2, 2, 2, 9, 9, 2, 2]
    spike = generate("spike:base=1,peak=50,at=2,length=2,unit=rps")
    assert spike.unit == "rps"
    assert spike.per_second(6) == [1, 1, 50, 50, 1, 1]


def test_diurnal_generator_has_its_trough_at_zero_and_peak_at_half_period() -> None:
    day = generate("diurnal:min=10,max=110,period=100,step=10")
    assert day.length == 100 and len(day.times) == 10
    load = dict(zip(day.times, day.values, strict=True))
    assert load[0] == 10 and load[50] == 110
    assert load[20] == pytest.approx(load[80])  # symmetric around the peak
    noisy = generate("diurnal:min=10,max=110,period=100,step=10,noise=0.5,seed=3")
    assert noisy.values != day.values
    assert (
        noisy.values
        == generate("diurnal:min=10,max=110,period=100,step=10,noise=0.5,seed=3").values
    )
    assert all(0.5 * v <= n <= 1.5 * v for v, n in zip(day.values, noisy.values, strict=True))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wave", "unknown kind 'wave'"),
        ("step:to=lots", "to must be a number >= 0, got 'lots'"),
        ("step:at=30,until=10", "until (10) must be after at (30)"),
        ("spike:length=0", "length must be a number > 0"),
        ("spike:height=3", "spike takes base, peak, at, length, unit; got 'height'"),
        ("diurnal:min=9,max=1", "max (1) must be >= min (9)"),
        ("diurnal:noise=1", "noise must be a number in [0, 1)"),
        ("step:unit=qps", "unit must be concurrency or rps"),
        ("step:to", "expected key=value"),
    ],
    ids=["kind", "number", "until", "length", "key", "min-max", "noise", "unit", "no-equals"],
)
def test_generator_errors_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(TraceError) as e:
        generate(spec)
    assert message in str(e.value) and spec in str(e.value)


# -- the command line ------------------------------------------------------------------------


@pytest.mark.process
def test_cli_prints_the_summary_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "autoscaler.simulate", str(STEP_CSV), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["trace"]["unit"] == "concurrency"
    assert summary["scale_to_zero_events"] == 1
    assert [c["wait_s"] for c in summary["cold_starts"]] == [2]


@pytest.mark.process
def test_cli_reports_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,rps\n0,fast\n")
    out = subprocess.run(
        [sys.executable, "-m", "autoscaler.simulate", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert out.returncode == 2
    assert "bad.csv, line 2, column 2 (rps)" in out.stderr


def test_cli_table_annotations_config_file_and_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = tmp_path / "config.yaml"
    cm.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-autoscaler\n"
        "data:\n  stable-window: 20s\n  max-scale-up-rate: 10\n  _example: ignored\n"
    )
    timeline = tmp_path / "timeline.csv"
    rc = main(
        [
            "--generate",
            "step:to=30,at=5,until=40",
            "-a",
            "target=10",
            "--config-file",
            str(cm),
            "--config",
            "scale-to-zero-grace-period=10s",
            "--timeline-csv",
            str(timeline),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "per-pod target      7 concurrent" in out  # target annotation 10 x 70 %
    assert "stable 20 s, panic 2 s" in out
    rows = timeline.read_text().splitlines()
    assert rows[0] == ",".join(TIMELINE_COLUMNS)
    assert len(rows) == 1 + 40 + 20 + 10 + 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "target=0"], "autoscaling.knative.dev/target: must be a number >= 0.01"),
        (["-c", "stable-window=5s"], "stable-window: must be between 6s and 1h"),
        (["--request-duration", "0"], "--request-duration must be > 0"),
    ],
    ids=["annotation", "config", "request-duration"],
)
def test_cli_rejects_bad_settings(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(STEP_CSV), *args]) == 2
    assert message in capsys.readouterr().err


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    with pytest.raises(SimulationError, match=r"pip install 'zeroserve\[plot\]'"):
        require_matplotlib()
    assert "zeroserve[plot]" in PLOT_HINT


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip(
        "matplotlib", reason="matplotlib is optional: pip install 'zeroserve[plot]'"
    )
    png = tmp_path / "spike.png"
    assert (
        main(
            [
                "--generate",
                "spike:base=2,peak=40,at=20,length=5",
                "--container-concurrency",
                "10",
                "--json",
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
