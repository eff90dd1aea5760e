"""Replay a load trace through the real autoscaler on a simulated clock.

``python -m autoscaler.simulate TRACE [options]`` answers "what would the
autoscaler do with this traffic?" before it meets production: how long a load
increase waits for pods, how much is over- or under-provisioned, what it
costs in pod-seconds, how often it panics, scales to zero and cold-starts.

Nothing here re-implements the autoscaler. One revision runs through the
real :class:`~autoscaler.multiscaler.Multiscaler` (windows, KPA decider,
scale step with bounds and the scale-to-zero gate) over an
:class:`~autoscaler.local.InMemoryCluster`; only the world around it is
simulated, second by second, on a fake clock (a 1-hour trace takes about a
second of wall time):

- **pods** (:class:`~.world.SimulatedPods`): a new replica count starts pods
  that become ready after ``--pod-start-delay``; a lower one removes pods at
  once, starting ones first, as a ReplicaSet does;
- **the activator** (:class:`~.world.ActivatorModel`: upstream's reports, as
  in knative/serving ``pkg/activator/handler/concurrency_reporter.go``, with
  zeroserve's burst pokes): on the first request for an idle revision it
  pushes a stat of concurrency 1 at once (the poke path of
  ``Multiscaler.record``), then every second the time-weighted average of the
  second just ended (less the 1 already reported), and it forgets the
  revision after a second without load, so an idle revision at zero gets no
  stats at all;
- **queue-proxies** (:class:`~.world.SimulatedQueueProxies`): scraped every
  second through the real ``Multiscaler.scrape`` and sampling code. Our
  activator is always in the request path, so everything they see is proxied
  and nets out to 0 in the windows; what the scrape contributes is those zero
  samples while pods are ready, which is what lets an idle revision's
  averages decay to 0;
- **ticks**: ``sync`` and ``tick`` every 2 s, on even trace seconds.

``--no-scrape`` drops the queue-proxy scrape, as upstream does when the
activator is always in the path: a what-if for wiring the autoscaler that way.

The load of each second is the trace's average over it; ``rps`` and
``concurrency`` are converted into each other with ``--request-duration``
(Little's law). Not modelled: queueing feedback (requests waiting for a pod
would raise the measured concurrency of an rps trace), pod failures, and
more than one activator (their stats would add up to the same totals).

Modules:

- ``world``: the simulated pieces around the autoscaler: the fake clock, the
  pods, the queue-proxies and the activator's stats;
- ``run``: :class:`~.run.Settings` and :func:`~.run.simulate`, the loop that
  moves the clock second by second and records a :class:`~.run.Second` each;
- ``summary``: the figures computed from a finished :class:`~.run.Run`;
- ``output``: the summary as a table, the timeline as CSV, the plot;
- ``__main__``: the command line.

The traces themselves (CSV files and generators) are autoscaler/traces.py.
"""

from .run import Run, Second, Settings, SimulationError, simulate
from .summary import cold_starts, shortfalls, summarize

__all__ = [
    "Run",
    "Second",
    "Settings",
    "SimulationError",
    "cold_starts",
    "shortfalls",
    "simulate",
    "summarize",
]
