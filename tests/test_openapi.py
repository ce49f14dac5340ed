"""The HTTP surface as a document, and a schemathesis run against the live daemon.

``claude2api/openapi.json`` is hand-written; these tests keep it honest: it is served at
``/openapi.json`` without a key, it lists exactly the routes the app registers (default and
mirror configurations), and a bounded, derandomized schemathesis run over every operation finds
no 5xx and no error body outside the route's dialect.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from importlib import resources
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from claude2api.http.app import create_app
from claude2api.http.handlers import openapi_for
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon, run_daemon, settings_for

SHIPPED = json.loads((resources.files("claude2api") / "openapi.json").read_bytes())
METHODS = ("get", "post", "put", "patch", "delete")


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation, following path-item ``$ref``s."""
    items = doc["components"].get("pathItems", {})
    routes = set()
    for path, item in doc["paths"].items():
        if "$ref" in item:
            item = items[item["$ref"].rsplit("/", 1)[1]]
        routes |= {(method.upper(), path) for method in METHODS if method in item}
    return routes


def registered_routes(env: dict[str, str]) -> set[tuple[str, str]]:
    app = create_app(settings_for("http://127.0.0.1:9", ["sk-ant-sid01-x"], env))
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


@pytest.mark.parametrize(
    "env",
    [{}, {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"}],
    ids=["default", "mirror"],
)
def test_document_lists_exactly_the_registered_routes(env: dict[str, str]) -> None:
    settings = settings_for("http://127.0.0.1:9", ["sk-ant-sid01-x"], env)
    assert documented_routes(openapi_for(settings)) == registered_routes(env)


def test_document_is_openapi_31_that_schemathesis_loads() -> None:
    assert SHIPPED["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(copy.deepcopy(SHIPPED))
    operations = [result.ok() for result in schema.get_all_operations()]  # .ok() raises on a bad operation
    assert {(op.method.upper(), op.path) for op in operations} == documented_routes(SHIPPED)
    assert set(SHIPPED["components"]["securitySchemes"]) == {"bearer", "apiKey"}


async def test_served_without_a_key(make_daemon) -> None:
    daemon = await make_daemon(env={"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"})
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/openapi.json") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            served = await resp.json()
    assert served["info"] == SHIPPED["info"]
    assert ("POST", "/mirror/v1/chat/completions") in documented_routes(served)
    assert documented_routes(SHIPPED) < documented_routes(served)


# -- schemathesis against the live daemon -------------------------------------------------------


class LiveDaemon:
    """The fake claude.ai and the daemon on loopback, on an event loop in a thread of their own,
    so schemathesis's blocking client can drive them from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Future[None] | None = None
        self.daemon: Daemon | None = None
        self.fake: FakeClaude | None = None

    def __enter__(self) -> LiveDaemon:
        self._thread.start()
        ready: Future[None] = Future()
        self._done = asyncio.run_coroutine_threadsafe(self._main(ready), self.loop)
        ready.result(timeout=20)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None and self._done is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._done.result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def run(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _main(self, ready: Future[None]) -> None:
        self._stop = asyncio.Event()
        try:
            async with FakeClaude() as fake:
                fake.add_account()
                env = {"ADMIN_KEY": "sk-admin-test", "UPSTREAM_READ_TIMEOUT": "5", "IMAGE_FETCH_TIMEOUT": "2"}
                settings = settings_for(fake.base_url, [fake.accounts[0].session_key], env)
                async with run_daemon(settings) as daemon:
                    await _loopback_only_images(daemon)
                    self.fake, self.daemon = fake, daemon
                    ready.set_result(None)
                    await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise


async def _loopback_only_images(daemon: Daemon) -> None:
    """A guard, not a mock: the fuzzer must never make the daemon fetch an image off this machine.
    Any image request to a non-loopback address fails loudly (and would show up as a 5xx)."""

    async def refuse_off_machine(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        host = params.url.host or ""
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise RuntimeError(f"fuzzer tried to fetch an image from {host}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(refuse_off_machine)
    old = daemon.services.http
    daemon.services.http = aiohttp.ClientSession(timeout=old.timeout, trace_configs=[trace])
    await old.close()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveDaemon]:
    with LiveDaemon() as running:
        yield running


def fuzzing_schema() -> schemathesis.BaseSchema:
    """The shipped document with image URLs narrowed to ``data:`` URLs, so generated requests
    never make the daemon download from the network."""
    doc = copy.deepcopy(SHIPPED)
    doc["components"]["schemas"]["ImageURL"] = {
        "type": "string",
        "enum": ["data:image/png;base64,iVBORw0KGgo=", "data:image/gif;base64,R0lGODlhAQABAAAAACw="],
    }
    return schemathesis.openapi.from_dict(doc)


FUZZ_SCHEMA = fuzzing_schema()
OPERATIONS = [result.ok() for result in FUZZ_SCHEMA.get_all_operations()]
#: Examples per operation and generation mode; the whole run stays within ~60 s here.
MAX_EXAMPLES = 30


def assert_error_in_dialect(path: str, response: schemathesis.Response) -> None:
    """An error status carries a JSON body in the route's dialect, nothing else."""
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), response.text[:300]
    body = response.json()
    if "/messages" in path:
        assert body.get("type") == "error", body
        error = body["error"]
        assert isinstance(error.get("type"), str) and isinstance(error.get("message"), str), body
        assert set(body) <= {"type", "error", "request_id"}, body
    else:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error.get("message"), str) and isinstance(error.get("type"), str), body
        assert {"message", "type", "param", "code"} >= set(error), body


#: Every operation with valid input; those that take input also with invalid input.
RUNS = [(op, schemathesis.GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, schemathesis.GenerationMode.NEGATIVE) for op in OPERATIONS if len(op.body) or len(op.path_parameters)
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("operation", "mode"), RUNS, ids=[f"{op.method.upper()} {op.path} {mode.value}" for op, mode in RUNS]
)
def test_schemathesis_no_5xx_and_errors_in_dialect(live: LiveDaemon, operation: Any, mode: Any) -> None:
    assert live.daemon is not None and live.fake is not None
    base_url = live.daemon.url
    keys = st.sampled_from(
        [
            {"Authorization": f"Bearer {live.daemon.api_key}"},
            {"x-api-key": live.daemon.api_key or ""},
            {"Authorization": "Bearer sk-admin-test"},
            {"Authorization": "Bearer wrong"},
            {},
        ]
    )
    http = requests.Session()

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode), auth=keys)
    def check(case: schemathesis.Case, auth: dict[str, str]) -> None:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "x-api-key")}
        case.headers = {**headers, **auth}
        response = case.call(base_url=base_url, session=http, timeout=15)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            assert_error_in_dialect(operation.path, response)

    try:
        check()
    finally:
        http.close()
    live.run(live.daemon.idle())
    assert live.fake.conversations == {}, "a request left a conversation behind"
