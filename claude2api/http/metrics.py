"""Prometheus metrics: ``GET /metrics``, from ``prometheus-client`` (no hand-written exposition).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (tests run several apps in one
process). Request metrics are counted once per request, from its
:class:`~claude2api.core.record.RequestRecord`, by the access-log middleware; nothing is looked up
per relayed event. The account and clean-up figures are read from the pool and the janitor at
scrape time by :class:`StateCollector`, so nothing has to keep gauges up to date.

No label carries a secret or unbounded client input: the model is the catalogue's base id or
``other``, the route is the route table's path, accounts appear as key fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from claude2api.accounts.pool import State
from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import Failure
from claude2api.core.record import RequestRecord
from claude2api.http.services import SERVICES

#: Time to first token: claude.ai takes from under a second to a minute (thinking, failover).
FIRST_TOKEN_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
#: Whole requests: up to the longest generations.
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
#: The status label of a request whose client went away before the reply was over (nginx's code).
CLIENT_GONE_STATUS = "499"
#: The model label of an id the catalogue does not resolve, and of requests that name no model.
OTHER_MODEL = "other"
NO_MODEL = "none"


def model_label(catalog: ModelCatalog, asked: object) -> str:
    """The catalogue's base id for the model a client asked for (``None``/``""``: the default), else ``other``."""
    if asked is None or asked == "":
        asked = catalog.default
    if not isinstance(asked, str):
        return OTHER_MODEL
    resolved = catalog.resolve(asked)
    return resolved.upstream if resolved is not None else OTHER_MODEL


class Metrics:
    """The daemon's metrics, in one registry of its own."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "claude2api_requests",
            "HTTP requests by dialect, route (the route table's path), model (base id or 'other') and"
            " status (499: the client went away first)",
            ("dialect", "route", "model", "status"),
            registry=registry,
        )
        self.first_token = Histogram(
            "claude2api_time_to_first_token_seconds",
            "Chat requests: seconds from arrival to the first content event (failover included)",
            ("dialect",),
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "claude2api_request_duration_seconds",
            "Chat requests: seconds from arrival to the end of the reply",
            ("dialect",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "claude2api_upstream_errors",
            "Failed claude.ai attempts by failure kind (one request may fail over several accounts)",
            ("failure",),
            registry=registry,
        )
        for failure in Failure:
            self.upstream_errors.labels(failure.value)
        self.active_streams = Gauge(
            "claude2api_active_streams", "Streaming responses open right now", registry=registry
        )
        self.conversations_created = Counter(
            "claude2api_conversations_created",
            "Conversations opened on claude.ai (one per attempt that got that far)",
            registry=registry,
        )
        self.uploads = Counter("claude2api_uploads", "Files uploaded to claude.ai", registry=registry)
        self.tool_calls = Counter(
            "claude2api_tool_calls", "Tool calls relayed to clients", ("dialect",), registry=registry
        )
        self.web_searches = Counter(
            "claude2api_web_searches", "Web searches claude.ai ran for replies", ("dialect",), registry=registry
        )
        registry.register(StateCollector(app))

    def observe(self, record: RequestRecord, route: str, status: str, duration: float) -> None:
        """Count one finished request."""
        dialect = record.dialect or NO_MODEL
        self.requests.labels(dialect, route, record.model_label, status).inc()
        for failure in record.upstream_failures:
            self.upstream_errors.labels(failure).inc()
        if record.conversations:
            self.conversations_created.inc(record.conversations)
        if record.uploads:
            self.uploads.inc(record.uploads)
        if record.dialect is None:
            return
        self.duration.labels(dialect).observe(duration)
        if record.first_token_seconds is not None:
            self.first_token.labels(dialect).observe(record.first_token_seconds)
        if record.tool_calls:
            self.tool_calls.labels(dialect).inc(record.tool_calls)
        if record.web_searches:
            self.web_searches.labels(dialect).inc(record.web_searches)

    def exposition(self) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class StateCollector(Collector):
    """Accounts by state and their usage headroom, and the janitor's figures, read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the pool's state at scrape time

    def collect(self) -> Iterator[Metric]:
        services = self.app.get(SERVICES)
        if services is None:  # not started yet, or shut down
            return
        snapshot = services.pool.snapshot()
        accounts = GaugeMetricFamily("claude2api_accounts", "Configured claude.ai accounts by state", labels=["state"])
        counts = dict.fromkeys((s.value for s in State), 0)
        for session in snapshot:
            counts[session["state"]] = counts.get(session["state"], 0) + 1
        for state, count in counts.items():
            accounts.add_metric([state], count)
        yield accounts
        headroom = GaugeMetricFamily(
            "claude2api_account_usage_headroom",
            "Share of a usage window still free (1 - utilization) as claude.ai last reported it, per"
            " account fingerprint and window ('max': the fullest window)",
            labels=["account", "window"],
        )
        for session in snapshot:
            for window, utilization in usage_windows(session).items():
                headroom.add_metric([session["fingerprint"], window], max(0.0, 1.0 - utilization))
        yield headroom
        janitor = services.janitor
        yield CounterMetricFamily(
            "claude2api_conversations_deleted", "Conversations deleted on claude.ai", value=janitor.deleted
        )
        yield GaugeMetricFamily(
            "claude2api_conversations_pending_cleanup",
            "Conversations whose stop/delete failed and waits for a retry",
            value=janitor.pending,
        )


def usage_windows(session: Mapping[str, Any]) -> dict[str, float]:
    """Utilization per window from a pool snapshot entry: its ``windows`` (a mapping of name to
    utilization, or a list of ``{"key"/"name", "utilization"}``) when the pool reports them, else its
    overall ``utilization`` as window ``max``."""
    windows = session.get("windows")
    found: dict[str, float] = {}
    if isinstance(windows, Mapping):
        items: list[tuple[Any, Any]] = list(windows.items())
    elif isinstance(windows, list) and windows:
        items = [(w.get("key") or w.get("name"), w.get("utilization")) for w in windows if isinstance(w, Mapping)]
    else:
        items = [("max", session.get("utilization"))]
    for name, utilization in items:
        if isinstance(name, str) and isinstance(utilization, (int, float)) and not isinstance(utilization, bool):
            found[name[:64]] = float(utilization)
    return found


METRICS = web.AppKey("claude2api.metrics", Metrics)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics`` on the main port (behind ``METRICS_KEY`` or ``ADMIN_KEY``)."""
    return request.app[METRICS].exposition()


def metrics_app(main: web.Application) -> web.Application:
    """The ``METRICS_ADDRESS`` listener's app: ``GET /metrics`` of ``main``, without auth."""

    async def scrape(request: web.Request) -> web.Response:
        return main[METRICS].exposition()

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def start_metrics_listener(main: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve :func:`metrics_app` on ``host:port``; the caller cleans the runner up."""
    runner = web.AppRunner(metrics_app(main), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
