"""zeroserve shared core: HTTP proxy engine, breaker, request statistics, config and API types."""
