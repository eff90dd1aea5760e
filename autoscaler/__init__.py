"""The autoscaler: metric collection, the KPA decider and the scale step, per revision.

- ``__main__``: ``python -m autoscaler``, the process, on Kubernetes or, with
  ``--control URL``, in local mode under ``zeroserve up``;
- ``config``: its settings and the command line;
- ``app``: the wiring, on Kubernetes and in local mode;
- ``multiscaler``: one decider per revision, ticked every 2 s, poked on the first
  request at zero;
- ``decider``: the KPA decider; ``spec``: its spec, derived from a revision's settings;
- ``aggregation``: per-second buckets averaged over a window; ``collector``: a
  revision's stable and panic windows;
- ``scraper`` and ``sampling``: scraping the queue-proxies; ``statserver``: the
  websocket the activators push their stats to;
- ``scaler``: the scale step: bounds, the scale-to-zero gate, the Active condition;
- ``model``: what the autoscaler needs from the world, as small interfaces;
  ``kubernetes`` and ``local``: those on Kubernetes, in memory and under ``zeroserve up``;
- ``metrics``: Prometheus metrics;
- ``simulate``: the simulator, ``python -m autoscaler.simulate``; ``traces``: its load
  traces (CSV files and generators).
"""
