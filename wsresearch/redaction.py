"""Masking credentials in the messages a feed sends: for recordings, logs and reprs.

A spec names the JSON keys whose values are secret (``FeedSpec.redact``: ``key``,
``apiKey``, ``signature``, ``passphrase``...). These functions find or mask those
values at any depth, in any letter case, in JSON text or in decoded values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["mask", "redact_text", "secret_values"]


def redact_text(text: str, keys: Sequence[str]) -> str:
    """``text`` with the values of JSON ``keys`` (at any depth) replaced by ``"***"``.

    Text that is not JSON is returned unchanged.

    Examples
    --------
    >>> redact_text('{"op":"auth","args":{"key":"k1","sign":"s"}}', ["key"])
    '{"op":"auth","args":{"key":"***","sign":"s"}}'
    """
    if not keys:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_scrub(value, {k.lower() for k in keys}, []), separators=(",", ":"))


def secret_values(message: Any, keys: Sequence[str]) -> list[str]:
    """The string values of JSON ``keys`` (any case, at any depth) in ``message``.

    ``message`` is JSON text or a decoded value: what :func:`redact_text` would mask.

    Examples
    --------
    >>> secret_values({"op": "auth", "args": {"Key": "k1", "sign": "s"}}, ["key"])
    ['k1']
    """
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError:
            return []
    found: list[str] = []
    _scrub(message, {k.lower() for k in keys}, found)
    return found


def _scrub(node: Any, secret: set[str], found: list[str]) -> Any:
    """``node`` with the values of ``secret`` keys masked; their string values go to ``found``."""
    if isinstance(node, dict):
        scrubbed = {}
        for key, value in node.items():
            if isinstance(key, str) and key.lower() in secret:
                if isinstance(value, str):
                    found.append(value)
                scrubbed[key] = "***"
            else:
                scrubbed[key] = _scrub(value, secret, found)
        return scrubbed
    if isinstance(node, list):
        return [_scrub(value, secret, found) for value in node]
    return node


def mask(message: Any, keys: Sequence[str]) -> Any:
    """``message`` (JSON text or a decoded value) with the values of ``keys`` masked.

    Text comes back as text (:func:`redact_text`), a dict or list as a new dict
    or list; anything else unchanged.

    Examples
    --------
    >>> mask({"op": "auth", "args": [{"apiKey": "k1"}]}, ["apikey"])
    {'op': 'auth', 'args': [{'apiKey': '***'}]}
    """
    if isinstance(message, str):
        return redact_text(message, keys)
    return _scrub(message, {k.lower() for k in keys}, [])
