"""Pure pieces of the core: the breaker, request statistics, config and annotation parsers."""
