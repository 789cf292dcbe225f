"""Ready-made feed specs, one module per exchange dialect.

Each module exposes ``spec(symbols, channels, url=None, **options) -> FeedSpec``:
``binance``, ``coinbase``, ``kraken``, ``bybit`` and ``okx`` for those exchanges'
public market data (see ``docs/exchanges/``); ``generic`` is the embedded
simulator's own dialect, used by the demo and the tests; ``raw`` keeps any JSON
feed, grouped by one type field.
"""
