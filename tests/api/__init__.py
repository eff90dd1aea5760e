"""Manifests: loading, validation and fuzzing (``zeroserve.api``), with the Knative
docs' samples."""
