"""Ready-made feed specs, one module per exchange dialect.

Each module exposes ``spec(symbols, channels, url=None, **options) -> FeedSpec``.
``generic`` is the embedded simulator's own dialect, used by the demo and the
tests.
"""
