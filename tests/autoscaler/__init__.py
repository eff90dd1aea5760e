"""The autoscaler: decider, windows, sampling, scale step and spec as tables; scraping,
the stats websocket, the multiscaler and the simulator."""
