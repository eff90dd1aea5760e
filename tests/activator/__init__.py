"""The activator: routing, throttling and stats as tables, and in front of real queue-proxies."""
