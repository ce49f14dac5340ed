"""The one ``data:`` URL and base64 decoder, for images and documents in every dialect (issue 8)."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

#: A media type as RFC 6838 allows it (lower case): it goes into the upload's multipart headers,
#: where a stray CR/LF or space would break the request (or inject a header).
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_URLSAFE = str.maketrans("-_", "+/")


def is_media_type(media_type: str) -> bool:
    """True for ``type/subtype`` in RFC 6838's characters, lower case: safe in an upload header."""
    return _MEDIA_TYPE.fullmatch(media_type) is not None


def decode_data_url(url: str) -> tuple[str, bytes]:
    """Decode ``data:<media type>[;params];base64,<data>`` into ``(media type, bytes)``.

    Standard and URL-safe base64 are both accepted, padded or not, since clients differ. A missing
    media type is sniffed from the bytes (``application/octet-stream`` if unknown); a given one
    must be a well-formed ``type/subtype``. Raises :class:`ValueError` with the reason.
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "data":
        raise ValueError("not a data: URL")
    meta, comma, payload = rest.partition(",")
    if not comma:
        raise ValueError("data URL has no ',' before the data")
    media_type, *params = (p.strip() for p in meta.split(";"))
    media_type = media_type.lower()
    if media_type and not is_media_type(media_type):
        raise ValueError("data URL has an invalid media type")
    if not params or params[-1].lower() != "base64":
        raise ValueError("data URL is not base64-encoded (';base64' missing)")
    data = decode_base64(urllib.parse.unquote(payload))
    if not data:
        raise ValueError("data URL is empty")
    return media_type or sniff_media_type(data) or "application/octet-stream", data


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not, whitespace ignored; :class:`ValueError` if invalid."""
    text = "".join(text.split()).translate(_URLSAFE).rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError("data URL has invalid base64 data") from None


def sniff_media_type(data: bytes) -> str | None:
    """The type given by the magic bytes at the start of ``data`` (PNG, JPEG, GIF, WebP, PDF)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None
