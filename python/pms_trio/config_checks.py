"""The value checks of the configuration schema (``config``): each takes a raw value from the file
and returns the resolved one, or raises :class:`Invalid` with the reason (the text that follows
``FIELD: `` in the final message). Pure functions; imports nothing of the package.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

LEVELS = ("debug", "info", "warn", "error", "none")
WORKER_TAGS = ("info", "ice", "dtls", "rtp", "srtp", "rtcp", "rtx", "bwe", "score", "simulcast", "svc",
               "sctp", "message")


class Invalid(Exception):
    """One field's problem; the text follows ``FIELD: `` in the final message."""




def got(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_range(lo: int, hi: int | None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not is_int(value) or value < lo or (hi is not None and value > hi):
            what = f"integer {lo}-{hi}" if hi is not None else f"integer >= {lo}"
            raise Invalid(f"expected {what}, got {got(value)}")
        return int(value)

    return check


port = int_range(0, 65535)  # 0: pick a free port
peer_port = int_range(1, 65535)


def positive_number(value: Any) -> float:
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value <= 0):
        raise Invalid(f"expected a number of seconds > 0, got {got(value)}")
    return float(value)


def non_negative_number(limit: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= limit:
            raise Invalid(f"expected a number from 0 to {limit:g}, got {got(value)}")
        return float(value)
    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {got(value)}")
    return value


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {got(value)}")
    return value


def nonempty_string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a non-empty string, got {got(value)}")
    return value.strip()


def ip(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected an IP address such as \"0.0.0.0\", got {got(value)}")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise Invalid(f"expected an IP address such as \"0.0.0.0\", got {got(value)}") from None


def optional_ip(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        return ""
    return ip(value)


def announced_ips(value: Any) -> tuple[str, ...]:
    """A string (one address, or several separated by commas) or a list of addresses."""
    if isinstance(value, str):
        items: list[Any] = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise Invalid(f"expected an IP address or a list of them, got {got(value)}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise Invalid(f"expected an IP address or a list of them, got {got(value)}")
        try:
            out.append(str(ipaddress.ip_address(item.strip())))
        except ValueError:
            raise Invalid(f"expected an IP address or a list of them, got {got(item)}") from None
    return tuple(out)


def level(value: Any) -> str:
    if isinstance(value, str) and value.lower() == "warning":
        return "warn"
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise Invalid(f"expected one of {', '.join(LEVELS)}, got {got(value)}")
    return value.lower()


def tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid(f"expected a list of strings from {', '.join(WORKER_TAGS)}, got {got(value)}")
    return tuple(value)


def location(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in " ?#"):
        raise Invalid(f"expected a URL path starting with \"/\", got {got(value)}")
    return value


def digits(count_lo: int, count_hi: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if is_int(value) and value >= 0:
            value = str(value)
        if (not isinstance(value, str) or not value.isascii() or not value.isdigit()
                or not count_lo <= len(value) <= count_hi):
            n = f"{count_lo}" if count_lo == count_hi else f"{count_lo}-{count_hi}"
            raise Invalid(f"expected a string of {n} digits, got {got(value)}")
        return value

    return check


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"expected one of {', '.join(choices)}, got {got(value)}")
        return value

    return check


def _url(value: Any, scheme: str, shape: str) -> tuple[str, Any]:
    """"" or a URL of ``scheme`` with a host (and a valid port): (the text, its parts)."""
    text = string(value).strip()
    if not text:
        return "", None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise Invalid(f"expected {shape}, got {got(value)} ({e})") from None
    if parts.scheme != scheme or not parts.hostname:
        raise Invalid(f"expected {shape}, got {got(value)}")
    return text, parts


def http_url(value: Any) -> str:
    """"" or ``http(s)://HOST[:PORT]/PATH`` (a hook's URL)."""
    text = string(value).strip()
    if text and urlsplit(text).scheme == "https":
        return _url(value, "https", "http(s)://HOST[:PORT]/PATH")[0]
    return _url(value, "http", "http(s)://HOST[:PORT]/PATH")[0]


def redis_url(value: Any) -> str:
    """"" or ``redis://HOST[:PORT][/DB]`` (the cluster's stream directory)."""
    text, parts = _url(value, "redis", "redis://HOST[:PORT][/DB]")
    db = parts.path.strip("/") if parts is not None else ""
    if db and not db.isdigit():
        raise Invalid(f"expected redis://HOST[:PORT][/DB], got {got(value)}")
    return text


def rtsp_url(value: Any) -> str:
    """"" or ``rtsp://HOST[:PORT]`` (where other nodes reach this one)."""
    return _url(value, "rtsp", "rtsp://HOST[:PORT]")[0].rstrip("/")
