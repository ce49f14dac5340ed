# claude2api container image.
#   docker build -t claude2api .                       # or: docker compose build
#   docker build --build-arg IMPERSONATE=1 -t claude2api .   # with the `impersonate` extra (once it exists)
# Secrets (SESSIONS, APIKEY, ADMIN_KEY, PROXY) come from the environment at run time, never from the image.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: a virtual environment with the daemon and its dependencies ------------------------------
FROM ${PYTHON_IMAGE} AS build
# 1 installs the optional `impersonate` extra (browser-like TLS to claude.ai); off by default.
ARG IMPERSONATE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY claude2api ./claude2api
RUN python -m venv /opt/claude2api \
    && if [ "$IMPERSONATE" = 1 ]; then target=".[impersonate]"; else target="."; fi \
    && /opt/claude2api/bin/pip install "$target"

# --- runtime: the same slim base, the venv, a non-root user, state on a volume ----------------------
FROM ${PYTHON_IMAGE}
# UID 1000: the user Hugging Face Spaces run containers as, so /data stays writable there too.
RUN useradd --uid 1000 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin claude2api \
    && mkdir /data \
    && chown claude2api:claude2api /data
COPY --from=build /opt/claude2api /opt/claude2api
ENV PATH=/opt/claude2api/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ADDRESS=0.0.0.0:8080 \
    STATE_FILE=/data/state.json \
    LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 1000:1000
EXPOSE 8080
# python rather than curl (the slim image has none); the port follows ADDRESS; /health needs no key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('ADDRESS', ':8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]
# Exec form: the daemon is PID 1 and gets the signals itself: SIGTERM (docker stop) lets open streams
# finish and deletes their conversations, SIGHUP (docker kill -s HUP) reloads the configuration.
ENTRYPOINT ["claude2api"]
CMD ["serve"]
