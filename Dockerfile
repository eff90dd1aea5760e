# syntax=docker/dockerfile:1
# zeroserve: one image for every component. The command picks it:
#   python -m activator | python -m autoscaler | python -m controller | python -m queueproxy
# The Helm chart (charts/zeroserve) sets the command of each container; the default
# below only makes a bare `docker run` do something useful.
#
#   docker build -t zeroserve:0.1.0 .

# Both stages use the same base, so the virtualenv built in the first one finds the
# same interpreter at the same path in the second.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the package is built from (see .dockerignore): tests, benchmarks and the
# local caches stay out of the build context.
COPY pyproject.toml README.md ./
COPY zeroserve ./zeroserve
COPY activator ./activator
COPY autoscaler ./autoscaler
COPY queueproxy ./queueproxy
COPY controller ./controller
# Wheels first, then an install from them alone, offline: the venv ends up with zeroserve
# and its dependencies only (the installers are removed, nothing at runtime needs them).
# The tracing extra (OpenTelemetry) is in: config-observability can turn tracing on in a
# running cluster, and the hops import it only then.
RUN python -m venv /opt/venv \
    && python -m pip wheel --wheel-dir /wheels '.[tracing]' \
    && /opt/venv/bin/pip install --no-index --find-links /wheels 'zeroserve[tracing]' \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools
# The hops' hot path compiled with mypyc (zeroserve/compiled.py, README "Compiling the
# hot path"), as `make compiled` does: gcc, the `compile` extra's pinned mypyc and the
# dependencies whose types mypyc reads, in this stage only. A hop uses the build only
# while the installed sources are the ones it was built from (they are: the wheel holds
# the same files). A build that fails leaves /opt/compiled empty and the image on the
# pure-Python hot path, saying why in the build's log.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip install --find-links /wheels '.[compile]' \
    && mkdir -p /opt/compiled \
    && (python -m zeroserve.compiled build /opt/compiled \
        || echo "zeroserve: the hot path is not compiled; the hops run it as Python" >&2)

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="zeroserve" \
      org.opencontainers.image.description="Knative-Serving-style serverless in Python" \
      org.opencontainers.image.licenses="Apache-2.0"
# The chart runs every container with a read-only root filesystem: no .pyc files are
# written, and logs are not held back in a buffer.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# The compiled hot path (empty if its build failed): every hop loads it from here.
COPY --from=builder /opt/compiled /opt/compiled
ENV ZEROSERVE_COMPILED_DIR=/opt/compiled
# The sample apps (examples/helloworld, examples/autoscale) ship too, so this image can
# also be a revision's image: command ["python", "examples/helloworld/app.py"].
WORKDIR /app
COPY examples ./examples
# The distroless "nonroot" user; the chart's securityContext asks for the same id.
USER 65532:65532
ENTRYPOINT []
CMD ["python", "-m", "activator"]
