"""Which symbols a session has rows of, kind by kind, and which it subscribed but never got.

A feed subscribes channels for a list of symbols; a researcher reading its rows learns of
a symbol that never sent a trade, or whose book went quiet for minutes, only by looking.
The quality report looks for them: each normalized kind the spec's channels make
(:data:`~wsresearch.normalize.KINDS`) is counted per symbol as the replay goes, chunk by
chunk, into a few numbers per symbol (rows, first and last receive time, the longest time
between two rows), so the table costs the same memory for a session of any length.

The symbols subscribed are those the adapter that built the spec was given
(:attr:`FeedSpec.origin`); they are matched to the rows' symbols without regard to case
(Binance is subscribed as ``btcusdt`` and names ``BTCUSDT`` in its rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from ._text import first_line
from ._warn import warn
from .clock import NS_PER_S
from .normalize import KINDS, Normalizer
from .spec import FeedSpec

__all__ = ["COVERAGE_SCHEMA", "SymbolCoverage", "without_rows"]

_TIME = pl.Datetime("ns", "UTC")

COVERAGE_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "symbol": pl.String(),
    "subscribed": pl.Boolean(),
    "rows": pl.Int64(),
    "first": _TIME,
    "last": _TIME,
    "longest_gap_s": pl.Float64(),
}
"""The columns of :attr:`QualityReport.symbols <wsresearch.quality.QualityReport>`."""

_SHOWN = 5  # symbols the summary names per kind; the table has them all


@dataclass(slots=True)
class _Seen:
    """One kind's rows of one symbol so far: receive times in ns since the epoch."""

    rows: int
    first: int
    last: int  # the last row's, in receive order
    gap: int | None  # the longest between two rows in a row, in receive order


class SymbolCoverage:
    """Rows per normalized kind and symbol, gathered a chunk of native frames at a time.

    Rows are taken in receive order (the recording's ``seq``, else the receive time), so
    ``first``, ``last`` and the longest gap are the same for every chunk size, even where
    the wall clock stepped back.

    Parameters
    ----------
    spec
        The spec the frames were made by: its channels' normalizers say which kinds
        and symbols the rows are, its origin which symbols were subscribed. ``None``
        (a report of frames alone): nothing is counted.

    Attributes
    ----------
    kinds
        The kinds counted, in :data:`KINDS`' order.
    subscribed
        The symbols the spec subscribed, as its adapter was given them; ``None`` where
        it does not say (a spec not made by an adapter).
    """

    def __init__(self, spec: FeedSpec | None) -> None:
        self._builds: dict[str, list[tuple[str, Normalizer]]] = {}
        self.kinds: list[str] = []
        self.subscribed: list[str] | None = None
        self._seen: dict[str, dict[str | None, _Seen]] = {}
        if spec is None:
            return
        for channel in spec.channels:
            if channel.normalized:
                self._builds[channel.name] = list(channel.normalized.items())
        made = {kind for builds in self._builds.values() for kind, _ in builds}
        self.kinds = [kind for kind in KINDS if kind in made]
        symbols = spec.origin.arguments.get("symbols") if spec.origin is not None else None
        if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols):
            self.subscribed = list(dict.fromkeys(symbols))
        self._seen = {kind: {} for kind in self.kinds}

    def add(self, frames: Mapping[str, pl.DataFrame]) -> None:
        """Count the rows of one chunk of native frames, after those of the chunks before.

        Parameters
        ----------
        frames
            Native frames by channel, as a replay's chunk or a live feed gives them.

        Warns
        -----
        UserWarning
            Once for a channel's normalizer that gives no ``symbol`` column or fails on
            the frame: that kind of that channel is not counted from then on.
        """
        parts: dict[str, list[pl.LazyFrame]] = {}
        for channel, frame in frames.items():
            if frame.height == 0:
                continue
            for kind, build in list(self._builds.get(channel, ())):
                try:
                    rows = build(frame.lazy())
                    if "symbol" not in rows.collect_schema().names():
                        raise pl.exceptions.ColumnNotFoundError("it gives no 'symbol' column")
                except Exception as error:  # a normalizer of the user's: never the report's end
                    self._give_up(channel, kind, build, error)
                    continue
                # Only the symbol and the times are selected: the kind's other columns
                # are never made.
                parts.setdefault(kind, []).append(rows.select(
                    pl.col("symbol").cast(pl.String), pl.col("recv_wall_ns").cast(pl.Int64),
                    pl.col("frame_seq").cast(pl.Int64)))
        counted = []
        for kind, found in parts.items():
            # Several channels of one kind: merged in receive order (their seq where
            # recorded, else the receive time).
            rows = found[0] if len(found) == 1 else pl.concat(found).sort(
                "frame_seq", "recv_wall_ns", maintain_order=True)
            counted.append((kind, rows.group_by("symbol").agg(
                pl.len().alias("rows"), pl.col("recv_wall_ns").first().alias("first"),
                pl.col("recv_wall_ns").last().alias("last"),
                pl.col("recv_wall_ns").diff().max().alias("gap"))))
        for kind, table in zip([k for k, _ in counted],
                               pl.collect_all([q for _, q in counted]), strict=True):
            self._fold(kind, table)

    def _fold(self, kind: str, table: pl.DataFrame) -> None:
        """Fold one chunk's counts of ``kind`` into those before."""
        seen = self._seen[kind]
        for symbol, rows, first, last, gap in table.iter_rows():
            held = seen.get(symbol)
            if held is None:
                seen[symbol] = _Seen(rows, first, last, gap)
                continue
            gaps = [g for g in (held.gap, gap, first - held.last) if g is not None]
            held.rows += rows
            held.last = last
            held.gap = max(gaps)

    def _give_up(self, channel: str, kind: str, build: Normalizer, error: Exception) -> None:
        """Count ``kind`` of ``channel`` no more, and say why, once."""
        self._builds[channel].remove((kind, build))
        warn(f"the symbols table leaves out the {kind} of channel {channel!r}: its "
             f"normalizer failed ({first_line(error)})")

    def frame(self) -> pl.DataFrame:
        """One row per kind and symbol: the kinds in :data:`KINDS`' order, subscribed first.

        A symbol subscribed but with no row of a kind has a row of its own there
        (``rows`` 0, the times null), spelled as in the other kinds' rows where it has
        any, else as subscribed; one whose rows spell it in several ways has a row per
        spelling. ``subscribed`` is null where the spec does not say what it
        subscribed (a spec not made by an adapter).
        """
        wanted = {s.upper(): s for s in self.subscribed or ()}
        # A symbol as its rows spell it, where any kind has rows of it.
        spelled = {symbol.upper(): symbol for seen in self._seen.values()
                   for symbol in seen if symbol is not None}
        rows: list[tuple[Any, ...]] = []
        for kind in self.kinds:
            seen = self._seen[kind]
            by_key: dict[str | None, list[str | None]] = {}
            for symbol in sorted(seen, key=lambda s: (s is None, s or "")):
                by_key.setdefault(None if symbol is None else symbol.upper(), []).append(symbol)
            for key, asked in wanted.items():
                rows += [_row(kind, symbol, True, seen[symbol]) for symbol in by_key.get(key, ())
                         ] or [(kind, spelled.get(key, asked), True, 0, None, None, None)]
            known = None if self.subscribed is None else False
            rows += [_row(kind, symbol, known, seen[symbol])
                     for key, symbols in by_key.items() if key not in wanted
                     for symbol in symbols]
        held = pl.DataFrame(rows, orient="row",
                            schema=COVERAGE_SCHEMA | {"first": pl.Int64(), "last": pl.Int64()})
        return held.with_columns(pl.col("first", "last").cast(_TIME))


def _row(kind: str, symbol: str | None, subscribed: bool | None,
         held: _Seen) -> tuple[Any, ...]:
    return (kind, symbol, subscribed, held.rows, held.first, held.last,
            None if held.gap is None else held.gap / NS_PER_S)


def without_rows(symbols: pl.DataFrame) -> str | None:
    """The summary's line: per kind, the subscribed symbols with no row of it.

    ``None`` when nothing was subscribed by name (the table has no subscribed symbol).
    """
    subscribed = symbols.filter(pl.col("subscribed"))
    if not subscribed.height:
        return None
    parts = []
    for (kind,), group in subscribed.group_by("kind", maintain_order=True):
        empty = group.filter(pl.col("rows") == 0)["symbol"].to_list()
        if empty:
            shown = ", ".join(empty[:_SHOWN]) + (", ..." if len(empty) > _SHOWN else "")
            parts.append(f"{kind} {len(empty)} of {group.height} ({shown})")
    count = subscribed["symbol"].str.to_uppercase().n_unique()
    return "; ".join(parts) if parts else f"none ({count} subscribed)"
