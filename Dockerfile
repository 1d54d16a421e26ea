# syntax=docker/dockerfile:1
#
# monitor: the probing / incident / halt engine, as a container.
#   docker build -t monitor .
#   docker run -v ./sites.yaml:/config/sites.yaml:ro -v monitor-data:/data -p 9400:9400 monitor
# See docs/deploy.md. The rules this file must keep are asserted by tests/deploy/test_dockerfile.py.

ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: build wheels for monitor and every pinned dependency ---------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/deploy/build-constraints.txt

WORKDIR /src
# Only what the wheel needs: edits to tests or docs do not invalidate this layer's cache.
COPY deploy/requirements.lock deploy/build-constraints.txt /src/deploy/
COPY pyproject.toml README.md /src/
COPY monitor /src/monitor
# asyncpg is the `postgres` extra (replicas on PostgreSQL, docs/scaling.md), named directly so
# every package on the line is a name pinned in the lock.
RUN pip wheel --wheel-dir /wheels -c deploy/requirements.lock . asyncpg

# --- stage 2: runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="monitor" \
      org.opencontainers.image.description="Monitoring and health-check engine: probes, incidents, halts, paging, Prometheus metrics" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MONITOR_CONFIG=/config/sites.yaml \
    MONITOR_LISTEN=0.0.0.0:9400

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volume
# ownership is predictable (chown 10001 on the host side of a bind mount).
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin monitor \
 && mkdir -p /config /data \
 && chown 10001:10001 /data

# Install from the wheels of stage 1 only (no index): the image holds exactly the pinned set.
# The bind mount keeps the wheels out of every layer of the final image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=deploy/requirements.lock,target=/tmp/requirements.lock \
    pip install --no-index --find-links /wheels -c /tmp/requirements.lock monitor asyncpg \
 && monitor --help > /dev/null

# State lives in /data: point sites.yaml at it (store: sqlite:////data/monitor.db,
# workspace: /data). A relative workspace resolves next to the config file, in read-only /config.
WORKDIR /data
VOLUME ["/config", "/data"]
EXPOSE 9400
USER 10001:10001

# No curl in slim images: ask Python. An empty ProxyHandler keeps HTTP(S)_PROXY from the
# environment from routing this loopback request through a proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:9400/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run", "-c", "/config/sites.yaml"]
