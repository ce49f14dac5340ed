"""The claude.ai web API client: one shared aiohttp session, every call of reference section 4.

Each method takes the session key explicitly (sent as the only cookie, reference section 2), so
one client serves every account. Non-success answers are classified into
:class:`~claude2api.core.failures.UpstreamError`; transport failures become transient errors.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiohttp_socks

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.types import Event
from claude2api.upstream.classify import classify_response
from claude2api.upstream.image_http import upload_filename
from claude2api.upstream.sse import SSEParser
from claude2api.upstream.translator import SearchStreamTranslator, StreamTranslator

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
#: Failures of the transport (including a SOCKS proxy's, which are not aiohttp errors).
TRANSPORT_ERRORS = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
    aiohttp_socks.ProxyError,
    aiohttp_socks.ProxyConnectionError,
    aiohttp_socks.ProxyTimeoutError,
)
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Account:
    """The credentials of one call: the session key and its organization."""

    key: str
    org_id: str


def transport_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamError(Failure.TRANSIENT, "claude.ai did not answer in time")
    detail = type(exc).__name__
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        detail += f" (the proxy answered HTTP {exc.status})"  # never str(exc): it holds the proxy URL
    elif isinstance(exc, aiohttp.ClientConnectorError):
        detail += f" ({exc.host}:{exc.port})"
    elif isinstance(exc, (aiohttp_socks.ProxyError, aiohttp_socks.ProxyConnectionError)):
        detail += f" ({exc})"  # aiohttp-socks messages name the proxy host, never its credentials
    return UpstreamError(Failure.TRANSIENT, f"could not reach claude.ai: {detail}")


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
        http: aiohttp.ClientSession,
        base_url: str,
        clock: Callable[[], float] = time.time,
        first_byte_timeout: float | None = None,
        tool_call_idle: float = 1.5,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        #: Seconds a completion has to deliver its headers and first bytes (a silent upstream would
        #: otherwise hold the request for the whole read timeout).
        self.first_byte_timeout = first_byte_timeout
        #: Seconds of silence after a client tool call that end the turn (claude.ai holds it open).
        self.tool_call_idle = tool_call_idle

    # -- plumbing -------------------------------------------------------------------------------

    def _headers(self, key: str, referer: str, accept: str = "application/json") -> dict[str, str]:
        return {
            "cookie": f"sessionKey={key}",
            "origin": self.base_url,
            "referer": self.base_url + referer,
            "user-agent": USER_AGENT,
            "accept": accept,
            "accept-language": "en-US,en;q=0.9",
            "anthropic-client-platform": "web_claude_ai",
            "cache-control": "no-cache",
        }

    async def _call(
        self,
        method: str,
        path: str,
        key: str,
        *,
        referer: str = "/new",
        json_body: Any = None,
        data: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        """One non-streaming call; returns status and body, or raises a classified error."""
        try:
            async with self.http.request(
                method,
                self.base_url + path,
                headers=self._headers(key, referer),
                json=json_body,
                data=data,
                allow_redirects=False,
            ) as resp:
                body = await resp.content.read(_MAX_ERROR_BODY) if resp.status not in ok else await resp.read()
                if resp.status not in ok:
                    raise classify_response(resp.status, resp.headers, body, self.clock())
                return resp.status, body
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from None

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
        """Legacy account-level upload ``/api/{org}/upload`` (2026 reference §3.4): no delete endpoint
        is known, so the file stays in the account."""
        return await self._upload(f"/api/{account.org_id}/upload", account, data, media_type, filename, "/new")

    async def upload_to_conversation(
        self, account: Account, conv_id: str, data: bytes, media_type: str, filename: str | None = None
    ) -> str:
        """Wiggle upload into a conversation (2026 reference §3.1), which may not exist yet; deleting
        the conversation deletes the file."""
        path = f"/api/organizations/{account.org_id}/conversations/{conv_id}/wiggle/upload-file"
        return await self._upload(path, account, data, media_type, filename, f"/chat/{conv_id}")

    async def _upload(
        self, path: str, account: Account, data: bytes, media_type: str, filename: str | None, referer: str
    ) -> str:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename or upload_filename(media_type), content_type=media_type)
        _, body = await self._call("POST", path, account.key, referer=referer, data=form, ok=(200, 201))
        answer = self._json(body, "upload")
        fields = answer if isinstance(answer, dict) else {}
        file_uuid = fields.get("file_uuid") or fields.get("uuid") or fields.get("id")
        if not isinstance(file_uuid, str) or not file_uuid:
            raise UpstreamError(Failure.UNKNOWN, "claude.ai accepted the upload but returned no file_uuid")
        return file_uuid

    async def usage(self, account: Account) -> Any:
        """Quota windows of the account (reference 4.12); utilization is a percentage here."""
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
        client tool calls (see :class:`StreamTranslator`) pings or stays silent ``tool_call_idle`` s."""
        url = f"{self.base_url}/api/organizations/{account.org_id}/chat_conversations/{conv_id}/completion"
        headers = self._headers(account.key, f"/chat/{conv_id}", accept="text/event-stream")
        loop = asyncio.get_running_loop()
        first_byte_by = loop.time() + self.first_byte_timeout if self.first_byte_timeout else None
        try:
            resp = await asyncio.wait_for(
                self.http.post(url, json=body, headers=headers, allow_redirects=False), self.first_byte_timeout
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from None
        try:
            if resp.status != 200:
                error_body = await resp.content.read(_MAX_ERROR_BODY)
                raise classify_response(resp.status, resp.headers, error_body, self.clock())
            client_tools = frozenset(
                t["name"] for t in body.get("tools") or () if isinstance(t, dict) and "type" not in t
            )
            parser = SSEParser(comments=bool(client_tools))
            searching = any(isinstance(t, dict) and t.get("type") == "web_search_v0" for t in body.get("tools") or ())
            stream = (SearchStreamTranslator if searching else StreamTranslator)(self.clock, client_tools)
            waiting = None if first_byte_by is None else max(0.0, first_byte_by - loop.time())
            chunk = await asyncio.wait_for(resp.content.readany(), waiting)
            while chunk:  # iter_any() by hand, so that the first read alone has the deadline
                for event, data in parser.feed(chunk):
                    for item in stream.handle(event, data):
                        yield item
                    if stream.done:
                        return
                if stream.paused:
                    try:
                        chunk = await asyncio.wait_for(resp.content.readany(), self.tool_call_idle)
                    except TimeoutError:
                        yield stream.pause_end()
                        return
                else:
                    chunk = await resp.content.readany()
            for event, data in parser.close():
                for item in stream.handle(event, data):
                    yield item
            if not stream.done:
                yield stream.end_of_stream()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc) from None
        finally:
            resp.release()


