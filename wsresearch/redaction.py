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

URLs are masked here too (:func:`redact_url`: user info, query values, token-like
path parts), and :class:`MaskingLogger` masks a connection's secrets in the
``websockets`` log. This is the one home of redaction: every view, log and file
that shows a URL or a sent message masks it with these functions.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["DEFAULT_REDACT", "MIN_SECRET", "MaskingLogger", "SecretMask", "auth_secret_values",
           "mask", "mask_auth", "masked_urls", "redact_request_url", "redact_text", "redact_url",
           "secret_values",
           "url_secrets"]

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


# A path segment that is a credential, not a name: long, of both letters and digits.
_TOKEN_LIKE = re.compile(r"(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{24,}")


def redact_url(url: str) -> str:
    """``url`` without credentials: user info, query values and token-like path parts masked.

    A query item without ``=`` (``?TOKEN``) is masked whole. A path segment that
    looks like a token (24 or more letters, digits, ``_`` or ``-``, with both
    letters and digits: a Binance listen key, say) is masked; stream names such as
    ``btcusdt@depth@100ms`` are not.

    Examples
    --------
    >>> redact_url("wss://user:pw@example.com/ws?token=abc&x=1")
    'wss://***:***@example.com/ws?token=***&x=***'
    >>> redact_url("wss://example.com/ws/pqia91ma19a5s61cv6a81va65sdf19v8a65a1?BARETOKEN")
    'wss://example.com/ws/***?***'
    """
    return _redacted(url, lambda key: True)


def redact_request_url(url: str, keys: Sequence[str]) -> str:
    """A REST request's ``url`` with only its secrets masked.

    User info, the query values of ``keys`` (any case) and token-like path parts: what a
    recording keeps of a request whose query says what was asked (a snapshot's
    ``symbol``), where :func:`redact_url` would mask every value.

    Examples
    --------
    >>> redact_request_url("https://api.x.com/depth?symbol=BTCUSDT&signature=abc", ["signature"])
    'https://api.x.com/depth?symbol=BTCUSDT&signature=***'
    """
    secret = _lower(keys)
    return _redacted(url, lambda key: key.lower() in secret)


def _redacted(url: str, masked: Callable[[str], bool]) -> str:
    """``url`` with its secrets masked.

    User info, the values of the query keys ``masked`` says are secret, bare query items
    and token-like path segments.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        # Still a valid URL (websockets wants a password with a user): a recording's
        # spec is rebuilt from its masked URL.
        netloc = "***:***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        (f"{key}=***" if masked(key) else f"{key}={value}") if sep else "***"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    path = "/".join("***" if _TOKEN_LIKE.fullmatch(part) else part
                    for part in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


class MaskingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger for a manager's connections, with the manager's secrets masked.

    At DEBUG, websockets logs the handshake (the URL with its query, every header) and
    every frame (an auth request with its key): each secret value becomes ``***``.
    """

    def __init__(self, logger: logging.Logger, secrets: SecretMask) -> None:
        super().__init__(logger, {})
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level`` with every secret masked."""
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "%s", self._secrets.apply(text), **kwargs)


def url_secrets(url: str, headers: Mapping[str, str]) -> set[str]:
    """The values in a URL and headers that must not be logged.

    The URL's password (and the ``Basic`` credentials websockets makes of its user
    and password), query values and bare query items, token-like path segments,
    and every header value.
    """
    parts = urlsplit(url)
    values = {value if sep else key
              for key, sep, value in (item.partition("=") for item in parts.query.split("&"))}
    values |= {part for part in parts.path.split("/") if _TOKEN_LIKE.fullmatch(part)}
    values |= {parts.password or "", *headers.values()}
    if parts.password:
        # What websockets sends (and logs) for user:password in the URL.
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
        values.add(base64.b64encode(pair.encode()).decode())
        values.add(unquote(parts.password))
    return {value for value in values if len(value) >= MIN_SECRET}


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\",;()<>]+")


def masked_urls(text: str) -> str:
    """``text`` with every URL in it shown by :func:`redact_url` (an error may quote one)."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
