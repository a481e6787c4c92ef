"""Helpers for the key tests: canary keys and every form a leak of one could take."""

import base64
import json
import secrets
from urllib.parse import quote


def canary(prefix: str = "sk-proj-") -> str:
    """A fresh, unmistakable provider key."""
    return f"{prefix}vbcanary{secrets.token_urlsafe(30)}"


def leaked_forms(key: str) -> dict[str, str]:
    """How a key could show up: plain, JSON-escaped, url-encoded, hex, base64 (standard and
    url-safe; the last characters depend on what follows, so they are left off)."""
    raw = key.encode()
    return {
        "plain": key,
        "json": json.dumps(key)[1:-1],
        "url": quote(key, safe=""),
        "url_every_byte": "".join(f"%{byte:02x}" for byte in raw),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode()[:-4],
        "urlsafe_base64": base64.urlsafe_b64encode(raw).decode()[:-4],
    }


def assert_no_leak(text: str, key: str, where: str) -> None:
    for name, form in leaked_forms(key).items():
        assert form not in text, f"The key ({name}) appears in {where}"
