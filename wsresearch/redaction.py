"""Masking credentials in the messages a feed sends: for recordings, logs and reprs.

A spec names the JSON keys whose values are secret (``FeedSpec.redact``, by
default :data:`DEFAULT_REDACT`: ``key``, ``apiKey``, ``signature``, ``sign``,
``passphrase``, ``jwt``, ``client_secret``, ``listenKey``...). These functions
find or mask those values at any depth, in any letter case, in JSON text or in
decoded values.

An *auth* message is masked more widely: some exchanges pass the key and the
signature positionally (Bybit: ``{"op": "auth", "args": [KEY, expires, SIG]}``),
where no key names them. In an auth message every string inside a list is
treated as secret too (:func:`auth_secret_values`, :func:`mask_auth`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_REDACT", "MIN_SECRET", "SecretMask", "auth_secret_values", "mask",
           "mask_auth", "redact_text", "secret_values"]

DEFAULT_REDACT: tuple[str, ...] = (
    "key", "apiKey", "api_key", "secret", "secretKey", "secret_key", "api_secret",
    "signature", "sign", "passphrase", "password", "token", "access_token", "refresh_token",
    "jwt", "client_id", "client_secret", "listenKey", "private_key",
)
"""JSON keys whose values are masked by default (any letter case): the auth shapes of
Binance, Bybit, OKX, Kraken, Coinbase and Deribit, and the common OAuth ones."""

_MASK = "***"
MIN_SECRET = 6
"""Values shorter than this are not masked by value: masking every ``1`` of a query's
``x=1`` would garble the text, and no credential is that short."""


class SecretMask:
    """Secret values, masked wherever they appear in a text (a log line, a sent message).

    Values are replaced longest first (so a secret that contains another leaves no tail),
    both as they are and as they appear inside JSON text (escaped).

    Examples
    --------
    >>> secrets = SecretMask()
    >>> secrets.add("KEY123456", "KEY123456-SIGNATURE", "x")
    >>> secrets.apply('{"args":["KEY123456-SIGNATURE","KEY123456"],"x":1}')
    '{"args":["***","***"],"x":1}'
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._order: list[str] = []

    def add(self, *values: object) -> None:
        """Mask ``values`` from now on (strings of at least :data:`MIN_SECRET` characters)."""
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET} - self._values
        if new:
            self._values |= new
            forms = self._values | {json.dumps(v)[1:-1] for v in self._values}
            self._order = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def apply(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for value in self._order:
            if value in text:
                text = text.replace(value, _MASK)
        return text


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
    return json.dumps(_scrub(value, _lower(keys), [], False), separators=(",", ":"))


def secret_values(message: Any, keys: Sequence[str]) -> list[str]:
    """The string values of JSON ``keys`` (any case, at any depth) in ``message``.

    ``message`` is JSON text or a decoded value: what :func:`redact_text` would mask.

    Examples
    --------
    >>> secret_values({"op": "auth", "args": {"Key": "k1", "sign": "s"}}, ["key"])
    ['k1']
    """
    found: list[str] = []
    _scrub(_decoded(message), _lower(keys), found, False)
    return found


def auth_secret_values(message: Any, keys: Sequence[str]) -> list[str]:
    """The secrets of an auth message: the values of ``keys``, and every string in a list.

    An auth message that is text but not JSON is secret as a whole.

    Examples
    --------
    >>> auth_secret_values({"op": "auth", "args": ["KEY123", 1700000000, "SIG456"]}, ["key"])
    ['KEY123', 'SIG456']
    >>> auth_secret_values("AUTH sk_live_abcdef123456", [])
    ['AUTH sk_live_abcdef123456']
    """
    decoded = _decoded(message)
    if isinstance(message, str) and decoded is message:
        return [message]
    found: list[str] = []
    _scrub(decoded, _lower(keys), found, True)
    return found


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
    return _scrub(message, _lower(keys), [], False)


def mask_auth(message: Any, keys: Sequence[str]) -> Any:
    """An auth message with its secrets masked: ``keys``' values and every string in a list.

    Examples
    --------
    >>> mask_auth({"op": "auth", "args": ["KEY123", 1700000000, "SIG456"]}, [])
    {'op': 'auth', 'args': ['***', 1700000000, '***']}
    """
    if isinstance(message, str):
        decoded = _decoded(message)
        if decoded is message:  # not JSON: nothing to tell apart, all of it is secret
            return _MASK
        return json.dumps(_scrub(decoded, _lower(keys), [], True), separators=(",", ":"))
    return _scrub(message, _lower(keys), [], True)


def _lower(keys: Sequence[str]) -> set[str]:
    return {k.lower() for k in keys}


def _decoded(message: Any) -> Any:
    if isinstance(message, str):
        try:
            return json.loads(message)
        except ValueError:
            return message
    return message


def _scrub(node: Any, secret: set[str], found: list[str], positional: bool) -> Any:
    """``node`` with secrets masked; their string values go to ``found``.

    Secrets are the values of ``secret`` keys, and with ``positional`` every string
    that is an item of a list.
    """
    if isinstance(node, dict):
        scrubbed = {}
        for key, value in node.items():
            if isinstance(key, str) and key.lower() in secret:
                found.extend(_strings(value))
                scrubbed[key] = _MASK
            else:
                scrubbed[key] = _scrub(value, secret, found, positional)
        return scrubbed
    if isinstance(node, list):
        items = []
        for value in node:
            if positional and isinstance(value, str):
                found.append(value)
                items.append(_MASK)
            else:
                items.append(_scrub(value, secret, found, positional))
        return items
    return node


def _strings(value: Any) -> list[str]:
    """Every string in a masked value: a secret may be a list of them, or a nested object."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
