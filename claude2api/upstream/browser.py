"""Browser header profiles that match the TLS fingerprint of each impersonation profile.

Cloudflare compares what the TLS ClientHello says (JA4) with what the headers say (user-agent,
``sec-ch-ua*``): a Chrome 152 handshake with a Chrome 142 user-agent is as suspicious as a Python
handshake. So every impersonation profile has exactly one header set here, copied from the headers
curl_cffi 0.17 itself sends for that profile (user-agent, client hints), turned from a page
navigation into the same-origin ``fetch`` the claude.ai front end makes (``sec-fetch-*``, accept,
priority). The plain aiohttp path uses :data:`DEFAULT_PROFILE`'s headers too: its TLS is not
Chrome's anyway, and a current user-agent is the least it can do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: ``UPSTREAM_IMPERSONATE`` default: curl_cffi's newest Chrome (its ``"chrome"`` alias in 0.17).
DEFAULT_PROFILE = "chrome152"
#: Every encoding both transports decode (aiohttp decodes br/zstd only with optional packages, so
#: the aiohttp path asks for gzip and deflate only; see :func:`api_headers`).
BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd"
PLAIN_ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class BrowserProfile:
    """What one browser build says about itself in headers."""

    name: str
    user_agent: str
    sec_ch_ua: str
    platform: str  # the quoted ``sec-ch-ua-platform`` value
    mobile: str = "?0"
    accept_language: str = "en-US,en;q=0.9"


_WINDOWS_152 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/152.0.0.0 Safari/537.36"
_MACOS_152 = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/152.0.0.0 Safari/537.36"
_MACOS_145 = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36"
_CH_UA_152 = '"Chromium";v="152", "Not?A_Brand";v="24", "Google Chrome";v="152"'
_CH_UA_145 = '"Not:A-Brand";v="99", "Google Chrome";v="145", "Chromium";v="145"'

PROFILES: dict[str, BrowserProfile] = {
    p.name: p
    for p in (
        BrowserProfile("chrome152", _WINDOWS_152, _CH_UA_152, '"Windows"'),
        BrowserProfile("chrome152_macos", _MACOS_152, _CH_UA_152, '"macOS"'),
        BrowserProfile("chrome145", _MACOS_145, _CH_UA_145, '"macOS"'),
    )
}
#: Aliases accepted in ``UPSTREAM_IMPERSONATE`` (curl_cffi's own names for "the newest").
ALIASES = {"chrome": DEFAULT_PROFILE}


def profile(name: str) -> BrowserProfile:
    """The header profile of an impersonation profile name; ValueError names the known ones."""
    key = ALIASES.get(name, name)
    try:
        return PROFILES[key]
    except KeyError:
        known = ", ".join(sorted([*PROFILES, *ALIASES]))
        raise ValueError(f"unknown browser profile {name!r}; expected one of {known}") from None


def new_device_id() -> str:
    """A fresh ``anthropic-device-id`` (uuid4, as the web app makes). Generate once per account and
    keep it in the state file: a device that changes on every start looks like a new browser each time."""
    return str(uuid.uuid4())


def referer_path(conv_id: str | None) -> str:
    """The page a browser is on: ``/new`` before the conversation exists, ``/chat/{id}`` after."""
    return f"/chat/{conv_id}" if conv_id else "/new"


def api_headers(
    browser: BrowserProfile,
    base_url: str,
    *,
    referer: str,
    accept: str = "application/json",
    device_id: str | None = None,
    impersonating: bool = True,
) -> dict[str, str]:
    """The headers of one claude.ai API call, in Chrome's order for a same-origin ``fetch``.

    ``referer`` is a path (:func:`referer_path`, or ``/new?incognito`` when creating a temporary
    chat). The cookie header is the transport's business (it comes from the account's jar).
    """
    base = base_url.rstrip("/")
    headers = {
        "sec-ch-ua-platform": browser.platform,
        "user-agent": browser.user_agent,
        "sec-ch-ua": browser.sec_ch_ua,
        "sec-ch-ua-mobile": browser.mobile,
        "accept": accept,
        "anthropic-client-platform": "web_claude_ai",
        "origin": base,
        "sec-fetch-site": "same-origin",
        "sec-fetch-mode": "cors",
        "sec-fetch-dest": "empty",
        "referer": base + referer,
        "accept-encoding": BROWSER_ACCEPT_ENCODING if impersonating else PLAIN_ACCEPT_ENCODING,
        "accept-language": browser.accept_language,
        "cache-control": "no-cache",
        "pragma": "no-cache",
        "priority": "u=1, i",
    }
    if device_id:
        headers["anthropic-device-id"] = device_id
    return headers
