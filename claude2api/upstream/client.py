"""The claude.ai web API client: every call of docs/protocol.md §3, through an upstream transport.

Each method takes the session key explicitly, so one client serves every account. How an account
reaches claude.ai is its :class:`AccountWire`: the transport of its egress (shared by accounts on
the same proxy), its own cookie jar (Cloudflare cookies stay with the account that got them), its
``anthropic-device-id`` and the browser headers matching the transport's fingerprint. Non-success
answers are classified into :class:`~claude2api.core.failures.UpstreamError`; a Cloudflare block
names the transport and egress it came through; transport failures are transient errors.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from typing import Any

from multidict import istr

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.types import Event
from claude2api.upstream import browser
from claude2api.upstream.classify import classify_response
from claude2api.upstream.image_http import upload_filename
from claude2api.upstream.sse import SSEParser
from claude2api.upstream.translator import SearchStreamTranslator, StreamTranslator
from claude2api.upstream.transport import AccountCookies, FilePart, Stream, TransportError, UpstreamTransport

_MAX_ERROR_BODY = 64 * 1024
#: A successful non-streaming answer larger than this is not one claude.ai sends.
_MAX_OK_BODY = 16 * 1024 * 1024
#: Wires kept for keys that are not configured accounts (mirror-mode callers), least recent dropped.
MAX_UNBOUND_WIRES = 256


@dataclass(frozen=True, slots=True)
class Account:
    """The credentials of one call: the session key and its organization."""

    key: str
    org_id: str


@dataclass(eq=False)
class AccountWire:
    """How one account reaches claude.ai (see the module docstring)."""

    transport: UpstreamTransport
    jar: AccountCookies
    device_id: str
    #: The operator's user-agent for this account (the one its ``cf_clearance`` is bound to).
    user_agent: str | None = None
    #: The browser cookie string the operator configured (a re-bind with the same keeps the jar).
    configured_cookie: str | None = None
    #: Header sets by ``accept``, referer left to fill: built once, copied per call.
    _headers: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def headers(self, base_url: str, referer: str, accept: str) -> dict[str, str]:
        template = self._headers.get(accept)
        if template is None:
            profile_name = getattr(self.transport, "profile", browser.DEFAULT_PROFILE)
            template = browser.api_headers(
                browser.profile(profile_name),
                base_url,
                referer="/new",
                accept=accept,
                device_id=self.device_id,
                impersonating=hasattr(self.transport, "profile"),
            )
            if self.user_agent:
                template["user-agent"] = self.user_agent
            # istr names: aiohttp keeps every open request's headers in a CIMultiDict, which stores
            # an istr as it is but a plain str as fresh lower-cased copies (~1.3 KB per stream).
            template = {istr(name): value for name, value in template.items()}
            self._headers[accept] = template
        headers = template.copy()
        headers["referer"] = base_url + referer  # same key: Chrome's header order is kept
        return headers

    def describe(self) -> str:
        """Transport and egress, safe to show: ``impersonate:chrome152 via socks5://u:***@host:1080``."""
        return self.transport.describe()


def canonical_org_id(value: Any) -> str | None:
    """``value`` as a canonical UUID string, or ``None``.

    The org id goes into every request path (with the cookie), so whatever claude.ai, the
    configuration or the state file says, only a UUID may get there: never ``../`` or a query.
    """
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = str(uuid.UUID(value))
    except ValueError:
        return None
    return parsed if parsed == value.lower() else None


class ClaudeWebClient:
    def __init__(
        self,
        transport: UpstreamTransport,
        base_url: str,
        clock: Callable[[], float] = time.time,
        first_byte_timeout: float | None = None,
        tool_call_idle: float = 1.5,
    ) -> None:
        """``transport`` serves keys no account was bound to (mirror mode, one-off checks)."""
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        #: Seconds a completion has to deliver its headers and first bytes (a silent upstream would
        #: otherwise hold the request for the whole read timeout).
        self.first_byte_timeout = first_byte_timeout
        #: Seconds of silence after a client tool call that end the turn (claude.ai holds it open).
        self.tool_call_idle = tool_call_idle
        self._wires: dict[str, AccountWire] = {}
        self._unbound: OrderedDict[str, AccountWire] = OrderedDict()

    # -- accounts -------------------------------------------------------------------------------

    def bind(
        self,
        key: str,
        transport: UpstreamTransport,
        *,
        device_id: str | None = None,
        cookie: str | None = None,
        user_agent: str | None = None,
    ) -> AccountWire:
        """Route ``key`` through ``transport`` with its own jar (kept across a re-bind unless the
        configured ``cookie`` changed) and device id."""
        old = self._wires.get(key)
        jar = old.jar if old is not None and old.configured_cookie == cookie else AccountCookies(key, cookie)
        wire = AccountWire(transport, jar, device_id or browser.new_device_id(), user_agent, cookie)
        self._wires[key] = wire
        return wire

    def unbind_except(self, keys: set[str]) -> None:
        """Forget the wires of accounts no longer configured (a reload)."""
        for key in [k for k in self._wires if k not in keys]:
            del self._wires[key]

    def wire(self, key: str) -> AccountWire:
        """The account's wire; a key never bound (a mirror-mode caller) gets one on the default
        transport, its jar kept while it is among the :data:`MAX_UNBOUND_WIRES` most recent."""
        wire = self._wires.get(key)
        if wire is not None:
            return wire
        wire = self._unbound.pop(key, None) or AccountWire(self.transport, AccountCookies(key), browser.new_device_id())
        self._unbound[key] = wire
        while len(self._unbound) > MAX_UNBOUND_WIRES:
            self._unbound.popitem(last=False)
        return wire

    # -- plumbing -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        key: str,
        *,
        referer: str = "/new",
        json_body: Any = None,
        files: list[FilePart] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        """One non-streaming call; returns status and body, or raises a classified error."""
        wire = self.wire(key)
        response = await wire.transport.request(
            method,
            self.base_url + path,
            headers=wire.headers(self.base_url, referer, "application/json"),
            jar=wire.jar,
            json_body=json_body,
            files=files,
            max_body=_MAX_OK_BODY,
        )
        if response.status not in ok:
            error = classify_response(response.status, response.headers, response.body[:_MAX_ERROR_BODY], self.clock())
            raise _through(error, wire)
        if response.truncated:
            raise UpstreamError(Failure.UNKNOWN, f"claude.ai sent more than {_MAX_OK_BODY} bytes for {path.split('/')[-1]}")
        return response.status, response.body

    @staticmethod
    def _json(body: bytes, what: str) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise UpstreamError(Failure.UNKNOWN, f"claude.ai sent an unreadable {what} response") from None

    # -- endpoints ------------------------------------------------------------------------------

    async def organizations(self, key: str) -> list[dict[str, Any]]:
        _, body = await self._call("GET", "/api/organizations", key)
        orgs = self._json(body, "organizations")
        if not isinstance(orgs, list):
            raise UpstreamError(Failure.UNKNOWN, "claude.ai sent an unexpected organizations response")
        return orgs

    async def create_conversation(self, account: Account, conv_id: str, *, model: str | None) -> None:
        body: dict[str, Any] = {
            "uuid": conv_id,
            "name": "",
            "include_conversation_preferences": True,
            "is_temporary": True,
        }
        if model:
            body["model"] = model
        await self._call(
            "POST",
            f"/api/organizations/{account.org_id}/chat_conversations",
            account.key,
            referer="/new?incognito",
            json_body=body,
            ok=(200, 201),
        )

    async def update_conversation_settings(self, account: Account, conv_id: str, settings: dict[str, Any]) -> None:
        await self._call(
            "PUT",
            f"/api/organizations/{account.org_id}/chat_conversations/{conv_id}",
            account.key,
            referer=f"/chat/{conv_id}",
            json_body={"settings": settings},
            ok=(200, 202, 204),
        )

    async def upload(self, account: Account, data: bytes, media_type: str, filename: str | None = None) -> str:
        """Legacy account-level upload ``/api/{org}/upload`` (docs/protocol.md §8.4): no delete endpoint
        is known, so the file stays in the account."""
        return await self._upload(f"/api/{account.org_id}/upload", account, data, media_type, filename, "/new")

    async def upload_to_conversation(
        self, account: Account, conv_id: str, data: bytes, media_type: str, filename: str | None = None
    ) -> str:
        """Wiggle upload into a conversation (docs/protocol.md §8.1), which may not exist yet; deleting
        the conversation deletes the file."""
        path = f"/api/organizations/{account.org_id}/conversations/{conv_id}/wiggle/upload-file"
        return await self._upload(path, account, data, media_type, filename, f"/chat/{conv_id}")

    async def _upload(
        self, path: str, account: Account, data: bytes, media_type: str, filename: str | None, referer: str
    ) -> str:
        part = FilePart(filename or upload_filename(media_type), media_type, data)
        _, body = await self._call("POST", path, account.key, referer=referer, files=[part], ok=(200, 201))
        answer = self._json(body, "upload")
        fields = answer if isinstance(answer, dict) else {}
        file_uuid = fields.get("file_uuid") or fields.get("uuid") or fields.get("id")
        if not isinstance(file_uuid, str) or not file_uuid:
            raise UpstreamError(Failure.UNKNOWN, "claude.ai accepted the upload but returned no file_uuid")
        return file_uuid

    async def app_start(self, account: Account) -> Any:
        """The bootstrap body with the account's live model list (``docs/protocol.md`` §9.1)."""
        query = "statsig_hashing_algorithm=djb2&growthbook_format=sdk&include_system_prompts=false"
        _, body = await self._call("GET", f"/edge-api/bootstrap/{account.org_id}/app_start?{query}", account.key)
        return self._json(body, "app_start")

    async def usage(self, account: Account) -> Any:
        """Quota windows of the account (docs/protocol.md §10.1); utilization is a percentage here."""
        _, body = await self._call("GET", f"/api/organizations/{account.org_id}/usage", account.key)
        return self._json(body, "usage")

    async def stop_response(self, account: Account, conv_id: str) -> None:
        await self._call(
            "POST",
            f"/api/organizations/{account.org_id}/chat_conversations/{conv_id}/stop_response",
            account.key,
            referer=f"/chat/{conv_id}",
            ok=(200, 202, 204),
        )

    async def delete_conversation(self, account: Account, conv_id: str) -> bool:
        """Delete a conversation; one that does not exist (never created) counts as deleted.
        Returns whether it existed."""
        status, _ = await self._call(
            "DELETE",
            f"/api/organizations/{account.org_id}/chat_conversations/{conv_id}",
            account.key,
            referer=f"/chat/{conv_id}",
            json_body={"uuid": conv_id},
            ok=(200, 202, 204, 404),
        )
        return status != 404

    async def completion(self, account: Account, conv_id: str, body: dict[str, Any]) -> AsyncIterator[Event]:
        """Send a turn and yield its neutral events until ``message_stop``, or until a turn paused at
        client tool calls (see :class:`StreamTranslator`) pings or stays silent ``tool_call_idle`` s.

        Headers and the first bytes must come within ``first_byte_timeout``; after that only the
        transport's read gap applies. Leaving early (the client went away) closes the upstream stream.
        """
        url = f"{self.base_url}/api/organizations/{account.org_id}/chat_conversations/{conv_id}/completion"
        wire = self.wire(account.key)
        # The 2026 generation creates the conversation with this call: the page is still /new.
        creating = "create_conversation_params" in body
        headers = wire.headers(self.base_url, browser.referer_path(None if creating else conv_id), "text/event-stream")
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self.first_byte_timeout):
                    stream = await stack.enter_async_context(
                        wire.transport.stream("POST", url, headers=headers, jar=wire.jar, json_body=body)
                    )
                    if stream.status != 200:
                        error_body = await _read_some(stream, _MAX_ERROR_BODY)
                        refused = classify_response(
                            stream.status, stream.headers, error_body, self.clock(), body.get("model")
                        )
                        raise _through(refused, wire)
                    chunks = await stack.enter_async_context(aclosing(stream.chunks()))  # type: ignore[type-var]
                    chunk = await anext(chunks, b"")
            except TimeoutError:
                raise TransportError("timeout", timeout=True) from None
            client_tools = frozenset(
                t["name"] for t in body.get("tools") or () if isinstance(t, dict) and "type" not in t
            )
            parser = SSEParser(comments=bool(client_tools))
            # In-stream windows are not attributed to this turn's model: the turn was served, so an
            # exhausted window that names no model is another model's (a 429 names the refused one).
            searching = any(isinstance(t, dict) and t.get("type") == "web_search_v0" for t in body.get("tools") or ())
            translator = (SearchStreamTranslator if searching else StreamTranslator)(self.clock, client_tools)
            while chunk:
                for event, data in parser.feed(chunk):
                    for item in translator.handle(event, data):
                        yield item
                    if translator.done:
                        return
                if translator.paused:
                    try:
                        chunk = await asyncio.wait_for(anext(chunks, b""), self.tool_call_idle)
                    except TimeoutError:
                        yield translator.pause_end()
                        return
                else:
                    chunk = await anext(chunks, b"")
            for event, data in parser.close():
                for item in translator.handle(event, data):
                    yield item
            if not translator.done:
                yield translator.end_of_stream()


async def _read_some(stream: Stream, limit: int) -> bytes:
    """Up to ``limit`` bytes of a stream's body (an error page), the rest left unread."""
    body = bytearray()
    async for chunk in stream.chunks():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _through(error: UpstreamError, wire: AccountWire) -> UpstreamError:
    """A Cloudflare block names the way it came through (transport, proxy without its password):
    the operator's next step depends on it (another proxy, the impersonate extra)."""
    if error.failure is Failure.BLOCKED:
        error.message = f"{error.message} (through {wire.describe()})"
        error.args = (error.message,)
    return error
