"""The Helm chart (charts/zeroserve) and the Dockerfile: rendered with the real helm binary,
validated against Kubernetes' schemas and our CRDs' schemas, checked field by field."""
