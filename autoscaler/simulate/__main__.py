"""``python -m autoscaler.simulate``: the simulator's command line.

Reads the trace (a CSV file or ``--generate``), turns the flags and
``--config-file`` into :class:`~autoscaler.simulate.run.Settings`, runs the
simulation and prints its summary (a table, or JSON with ``--json``); writes
the timeline CSV and the plot when asked. A bad trace, flag value or setting
is one line on stderr and exit code 2, as argparse does for its own errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import yaml

from zeroserve.autoscaling.config import AutoscalerConfig, ConfigError
from zeroserve.configmap import parse_duration, parse_int32

from ..traces import GENERATOR_HELP, TraceError, generate, read_csv
from .output import PLOT_HINT, format_table, plot, require_matplotlib, write_timeline
from .run import Settings, SimulationError, simulate
from .summary import summarize

ANNOTATION_PREFIX = "autoscaling.knative.dev/"


def _seconds(text: str) -> float:
    """A duration as a plain number of seconds (``90``) or Go syntax (``1m30s``)."""
    try:
        value = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds (90) or a duration (1m30s), got {text!r}"
        ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = parse_int32(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


_DESCRIPTION = """\
Replay a load trace through the real KPA autoscaler (multiscaler, windows,
decider, scale step) on a simulated clock, and report what it would do:
time to the needed pods after each load increase, over- and
under-provisioning, pod-seconds, scale events, panic, scale to zero and cold
starts. Needed pods = ceil(load / the decider's per-pod target); a 1-hour
trace runs in about a second."""

_EPILOG = """\
trace files: CSV with the header 'time_s,concurrency' or 'time_s,rps'; each
row's load holds until the next row (0 before the first row); lines starting
with '#' are comments.
"""

_EXAMPLES = """
examples:
  python -m autoscaler.simulate examples/traces/step.csv
  python -m autoscaler.simulate examples/traces/spike.csv --container-concurrency 10 \\
      --plot spike.png --timeline-csv spike-timeline.csv
  python -m autoscaler.simulate --generate diurnal:max=300,noise=0.2 -a target=20 --json
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autoscaler.simulate",
        description=_DESCRIPTION,
        epilog=_EPILOG + "\n" + GENERATOR_HELP + _EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("load")
    src.add_argument("trace", nargs="?", metavar="TRACE", help="CSV trace file")
    src.add_argument(
        "--generate", metavar="SPEC", help="a built-in trace instead of a file (see below)"
    )
    src.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="seconds to simulate (90 or 1m30s); default: a generated day's length, else "
        "the last row plus stable window + grace period + scale-down delay + 60 s",
    )
    src.add_argument(
        "--request-duration",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="seconds per request, to turn rps into concurrency and back (default 0.1)",
    )
    rev = p.add_argument_group("revision")
    rev.add_argument(
        "--annotation",
        "-a",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"revision annotation, repeatable; a KEY without '/' gets the {ANNOTATION_PREFIX} "
        "prefix (e.g. target=10, window=30s, metric=rps, min-scale=1)",
    )
    rev.add_argument(
        "--container-concurrency",
        type=_count,
        default=0,
        metavar="N",
        help="containerConcurrency (default 0: unlimited)",
    )
    rev.add_argument(
        "--config",
        "-c",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config-autoscaler key, repeatable; overrides --config-file "
        "(e.g. stable-window=30s, scale-to-zero-grace-period=10s)",
    )
    rev.add_argument(
        "--config-file",
        metavar="FILE",
        help="config-autoscaler ConfigMap YAML (its data), or a plain key: value mapping",
    )
    world = p.add_argument_group("pods")
    world.add_argument(
        "--pod-start-delay",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="from a new replica count to the pod being ready (default 2)",
    )
    world.add_argument(
        "--initial-pods",
        type=_count,
        default=0,
        metavar="N",
        help="ready pods at second 0 (default 0: scaled to zero)",
    )
    world.add_argument(
        "--no-scrape",
        action="store_true",
        help="do not scrape queue-proxies: only the activator's stats reach the "
        "windows (upstream's mode with target-burst-capacity -1)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of a table"
    )
    out.add_argument(
        "--timeline-csv", metavar="FILE", help="write one CSV row per simulated second"
    )
    out.add_argument("--plot", metavar="FILE", help=f"draw a PNG (needs matplotlib: {PLOT_HINT})")
    return p


def load_configmap(path: str) -> dict[str, str]:
    """The data of a config-autoscaler ConfigMap file, values as strings."""
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise SimulationError(f"{path}: cannot read the ConfigMap: {e}") from None
    # Knative ships several ConfigMaps per file; pick config-autoscaler's.
    maps = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    if maps:
        named = [d for d in maps if (d.get("metadata") or {}).get("name") == "config-autoscaler"]
        doc = (named or maps)[0]
        data = doc.get("data") or {}
    elif len(docs) == 1:
        data = docs[0]
    else:
        raise SimulationError(f"{path}: expected a ConfigMap or one key: value mapping")
    if not isinstance(data, dict):
        raise SimulationError(f"{path}: the ConfigMap data must be a mapping")
    # ConfigMap values are strings; YAML reads 1000 or true unquoted as others.
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in data.items()}


def _settings(args: argparse.Namespace) -> Settings:
    data = load_configmap(args.config_file) if args.config_file else {}
    data.update(dict(args.config))
    unknown = AutoscalerConfig.unknown_keys(data)
    if unknown:
        print(
            f"warning: ignoring unknown config-autoscaler keys: {', '.join(unknown)}",
            file=sys.stderr,
        )
    annotations = {(k if "/" in k else ANNOTATION_PREFIX + k): v for k, v in args.annotation}
    if args.request_duration <= 0:
        raise SimulationError("--request-duration must be > 0")
    duration = None if args.duration is None else math.ceil(args.duration)
    if duration == 0:
        raise SimulationError("--duration must be at least 1 s")
    return Settings(
        annotations=annotations,
        container_concurrency=args.container_concurrency,
        config=AutoscalerConfig.from_mapping(data),
        pod_start_delay=args.pod_start_delay,
        initial_pods=args.initial_pods,
        request_duration=args.request_duration,
        duration=duration,
        scrape=not args.no_scrape,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.trace is None) == (args.generate is None):
        parser.error("give either a TRACE file or --generate SPEC")
    try:
        if args.plot:
            require_matplotlib()
        trace = generate(args.generate) if args.generate else read_csv(args.trace)
        run = simulate(trace, _settings(args))
    except (TraceError, SimulationError, ConfigError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    summary = summarize(run)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        sys.stdout.write(format_table(summary))
    if args.timeline_csv:
        write_timeline(run, args.timeline_csv)
    if args.plot:
        plot(run, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
