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
from typing import Any

import polars as pl

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


class SymbolCoverage:
    """Rows per normalized kind and symbol, gathered a chunk of native frames at a time.

    Parameters
    ----------
    spec
        The spec the frames were made by: its channels' normalizers say which kinds
        and symbols the rows are, its origin which symbols were subscribed. ``None``
        (a report of frames alone): nothing is counted.
    """

    def __init__(self, spec: FeedSpec | None) -> None:
        self._builds: dict[str, list[tuple[str, Normalizer]]] = {}
        self.kinds: list[str] = []
        self.subscribed: list[str] | None = None
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
        # kind -> symbol -> [rows, first, last, longest gap] (ns since the epoch)
        self._seen: dict[str, dict[str | None, list[Any]]] = {kind: {} for kind in self.kinds}

    def add(self, frames: Mapping[str, pl.DataFrame]) -> None:
        """Count the rows of one chunk of native frames (by channel), after those before."""
        parts: dict[str, list[pl.LazyFrame]] = {}
        for channel, frame in frames.items():
            if frame.height == 0:
                continue
            for kind, build in self._builds.get(channel, ()):
                # Only the symbol and the receive time are selected: polars leaves the
                # kind's other columns unmade.
                parts.setdefault(kind, []).append(build(frame.lazy()).select(
                    pl.col("symbol").cast(pl.String), pl.col("recv_wall_ns").cast(pl.Int64)))
        if not parts:
            return
        kinds = list(parts)
        counted = pl.collect_all([
            _in_order(parts[kind]).group_by("symbol").agg(
                pl.len().alias("rows"), pl.col("recv_wall_ns").min().alias("first"),
                pl.col("recv_wall_ns").max().alias("last"),
                pl.col("recv_wall_ns").diff().max().alias("gap"))
            for kind in kinds])
        for kind, table in zip(kinds, counted, strict=True):
            seen = self._seen[kind]
            for symbol, rows, first, last, gap in table.iter_rows():
                held = seen.get(symbol)
                if held is None:
                    seen[symbol] = [rows, first, last, gap]
                    continue
                between = first - held[2]  # from the last row of the chunks before
                held[0] += rows
                held[1] = min(held[1], first)
                held[2] = max(held[2], last)
                held[3] = max(g for g in (held[3], gap, between) if g is not None)

    def frame(self) -> pl.DataFrame:
        """One row per kind and symbol: the kinds in :data:`KINDS`' order, subscribed first.

        A symbol subscribed but with no row of a kind has a row of its own there
        (``rows`` 0, the times null), spelled as in the other kinds' rows where it has
        any, else as subscribed. ``subscribed`` is null where the spec does not say
        what was subscribed (a spec not made by an adapter).
        """
        wanted = {s.upper(): s for s in self.subscribed or ()}
        # A symbol as its rows spell it, where any kind has rows of it.
        spelled = {str(symbol).upper(): symbol for seen in self._seen.values()
                   for symbol in seen if symbol is not None}
        rows: list[tuple[Any, ...]] = []
        for kind in self.kinds:
            seen = self._seen[kind]
            by_key = {None if s is None else s.upper(): s for s in seen}
            for key, asked in wanted.items():
                symbol = by_key.get(key)
                if symbol is None:
                    rows.append((kind, spelled.get(key, asked), True, 0, None, None, None))
                else:
                    rows.append(_row(kind, symbol, True, seen[symbol]))
            known = None if self.subscribed is None else False
            rows += [_row(kind, symbol, known, seen[symbol])
                     for symbol in sorted(seen, key=lambda s: (s is None, s or ""))
                     if symbol is None or symbol.upper() not in wanted]
        held = pl.DataFrame(rows, orient="row",
                            schema=COVERAGE_SCHEMA | {"first": pl.Int64(), "last": pl.Int64()})
        return held.with_columns(pl.col("first", "last").cast(_TIME))


def _in_order(parts: list[pl.LazyFrame]) -> pl.LazyFrame:
    """One kind's rows of a chunk in receive order: a channel's are already."""
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts).sort("recv_wall_ns", maintain_order=True)


def _row(kind: str, symbol: str | None, subscribed: bool | None,
         held: list[Any]) -> tuple[Any, ...]:
    rows, first, last, gap = held
    return (kind, symbol, subscribed, rows, first, last,
            None if gap is None else gap / NS_PER_S)


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


_SHOWN = 5  # symbols the summary names per kind; the table has them all
