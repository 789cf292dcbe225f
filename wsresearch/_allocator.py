"""polars' memory allocator, kept to one arena in the processes wsresearch starts itself.

polars allocates through jemalloc, which by default gives threads up to four arenas a core
and keeps each one's freed pages a while. A replay frees, on its main thread, the chunks
its read-ahead threads read and decoded, so the freed pages spread over several arenas, and
an export's or a report's peak memory grows by what they hold. With one arena the same
export peaks about 40 MB lower (1.5M frames, 2 cores: 183 MB against 241) and runs as fast
(``docs/performance.md``, "polars' allocator in one arena").

jemalloc reads its settings once, when polars is first imported, from
``_RJEM_MALLOC_CONF``; polars adds its own before the value found there, so the value's
settings win. :func:`one_arena` adds ``narenas:1`` to it, and only where polars is not
imported yet and no number of arenas is set already: the command line and the worker
processes of a pool (:func:`~wsresearch._catalog.process_pool`) call it first. A process of
the user's own (a notebook) is left as it is; ``docs/performance.md`` says how to set it
there.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ARENAS", "CONF", "one_arena"]

CONF = "_RJEM_MALLOC_CONF"
"""The environment variable jemalloc, as polars builds it, reads its settings from."""

ARENAS = "narenas:1"


def one_arena() -> bool:
    """Have polars' allocator use one arena, if polars is not imported yet; whether it will.

    A number of arenas already set (``narenas:4`` in ``_RJEM_MALLOC_CONF``) is left as it
    is: the user's setting wins.
    """
    if "polars" in sys.modules:
        return False
    found = os.environ.get(CONF, "")
    if "narenas" not in found:
        os.environ[CONF] = f"{found},{ARENAS}" if found else ARENAS
    return True
