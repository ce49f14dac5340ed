"""Who may call the daemon: API keys, and mirror mode's caller-supplied session keys."""

from __future__ import annotations

import hmac
import re

from aiohttp import web

from claude2api.core.failures import APIError

#: claude.ai session key format (clewdr's regex, docs/protocol.md §1.2): sid01 and sid02 both exist.
SESSION_KEY_RE = re.compile(r"sk-ant-sid\d{2}-[0-9A-Za-z_-]{86,120}-[0-9A-Za-z_-]{6}AA")
ORG_ID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def presented_key(request: web.Request) -> str | None:
    """The credential a client sent: ``Authorization: Bearer`` (any case) or ``x-api-key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def key_matches(presented: str, accepted: tuple[str, ...]) -> bool:
    """Constant-time comparison against every accepted key (no early exit on a match).

    aiohttp hands over header bytes that are not UTF-8 as surrogate escapes; they are compared as
    the bytes they were (and so never match), instead of failing to encode.
    """
    candidate = presented.encode("utf-8", "surrogateescape")
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched


def check_api_key(request: web.Request, accepted: tuple[str, ...]) -> None:
    if not accepted:
        return  # allowed only on a loopback address; the config refuses it elsewhere
    presented = presented_key(request)
    if presented is None:
        raise APIError(
            401,
            "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`.",
            code="missing_api_key",
        )
    if not key_matches(presented, accepted):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


def mirror_credentials(request: web.Request) -> tuple[str, str | None]:
    """The caller's own claude.ai ``sessionKey[:orgUUID]`` from the Bearer token (mirror mode)."""
    presented = presented_key(request)
    if presented is None:
        raise APIError(
            401,
            "Mirror mode: send your claude.ai session key as `Authorization: Bearer sk-ant-sid01-...[:orgUUID]`.",
            code="missing_session_key",
        )
    key, _, org = presented.partition(":")
    if not SESSION_KEY_RE.fullmatch(key) or (org and not ORG_ID_RE.fullmatch(org)):
        raise APIError(
            401,
            "Mirror mode: the Bearer token is not a claude.ai session key (expected `sk-ant-sid01-...` "
            "optionally followed by `:<organization uuid>`).",
            code="invalid_session_key",
        )
    return key, org or None
