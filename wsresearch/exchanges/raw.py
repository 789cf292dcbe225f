"""A spec for any JSON feed: keeps every object, grouped by one type field.

Used by ``wsresearch record`` and ``wsresearch replay`` when no exchange adapter
applies. Every JSON object becomes a row of the ``message`` channel, whose one
declared column is the type field; other fields are accepted and ignored. Messages
are recorded whatever they contain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from ..spec import Channel, FeedSpec, OutboundMessage
from ._common import assemble

__all__ = ["CHANNELS", "spec"]

CHANNELS: tuple[str, ...] = ("message",)
"""The one channel: every JSON object the feed sends."""


def spec(
    url: str, type_field: str = "type", subscribe: Sequence[OutboundMessage] = (), **overrides: Any
) -> FeedSpec:
    """A :class:`~wsresearch.spec.FeedSpec` keeping every JSON object, by ``type_field``.

    Parameters
    ----------
    url
        The feed's ``ws://`` or ``wss://`` URL.
    type_field
        The field naming each message's type: the one declared column.
    subscribe
        Messages to send on every connect.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        If ``type_field`` is not a usable field name.
    """
    if not type_field.isidentifier() or type_field.startswith("_"):
        raise ValueError(f"--type-field must be a plain field name, got {type_field!r}")
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Message",
        __config__=ConfigDict(extra="ignore", coerce_numbers_to_str=True),
        **{type_field: (str | None, None)},
    )
    return assemble(
        "raw", {"type_field": type_field}, overrides,
        url=url,
        channels=[Channel(name="message", model=model)],
        type_of=_message_if_object,
        subscribe=list(subscribe),
        description=f"raw JSON feed at {url}, by {type_field!r}",
    )


def _message_if_object(decoded: Any) -> str | None:
    return "message" if isinstance(decoded, dict) else None
