"""The pure control plane (``zeroserve.serving``): Services to Routes, status, domains, views,
bad manifests and fuzzed operation sequences."""
