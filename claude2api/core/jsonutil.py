"""The one compact JSON encoder: what the SDKs' own servers send."""

from __future__ import annotations

import json
from typing import Any

#: Compact separators, UTF-8 text left as is (no ``\uXXXX`` escapes).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_json(obj: Any) -> str:
    """``obj`` as compact JSON text."""
    return _ENCODER.encode(obj)
