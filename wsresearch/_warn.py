"""Warnings attributed to the code that called into the package, wherever they arise in it.

A warning about a recording (a damaged segment, an unfinished write) is raised deep in the
reader, a varying number of calls below what the user called: ``recording.chunks()``
iterated in a loop, ``replay()``, an export. :func:`warn` names the first caller outside
the package as where it happened, as ``warnings.warn(..., skip_file_prefixes=...)`` does
from Python 3.12 on, so the line shown is the user's own, and filters by module apply to it.

A replay reads ahead in threads of its own, where no caller is the user's: there the
warnings are held (:func:`held`) and given again in the thread that takes the work's
result, at the caller's line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from types import FrameType

__all__ = ["held", "warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Passed over too: the package's own context managers leave through contextlib's frames.
_CONTEXTLIB = contextlib.__file__
_holding = threading.local()  # .found: the list this thread's warnings go to, if any


@contextlib.contextmanager
def held() -> Iterator[list[Warning]]:
    """Keep the warnings :func:`warn` gives in this thread, meanwhile, in the list yielded."""
    found: list[Warning] = []
    before = getattr(_holding, "found", None)
    _holding.found = found
    try:
        yield found
    finally:
        _holding.found = before


def warn(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn`, attributed to the nearest caller outside this package.

    (And outside :mod:`contextlib`, whose frames a context manager of the package's
    leaves through.)

    Where this thread holds its warnings (:func:`held`), it is kept there instead.
    """
    found = getattr(_holding, "found", None)
    if found is not None:
        found.append(message if isinstance(message, Warning) else category(message))
        return
    level = 2  # the caller of warn()
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(_PACKAGE)
                                 or frame.f_code.co_filename == _CONTEXTLIB):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
