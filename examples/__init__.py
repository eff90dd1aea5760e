"""Runnable examples: the sample apps and manifests."""
