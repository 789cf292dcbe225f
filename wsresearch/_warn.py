"""Warnings attributed to the code that called into the package, wherever they arise in it.

A warning about a recording (a damaged segment, an unfinished write) is raised deep in the
reader, a varying number of calls below what the user called: ``recording.chunks()``
iterated in a loop, ``replay()``, an export. :func:`warn` names the first caller outside
the package as where it happened, as ``warnings.warn(..., skip_file_prefixes=...)`` does
from Python 3.12 on, so the line shown is the user's own, and filters by module apply to it.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn`, attributed to the nearest caller outside this package.

    In a thread of the package's own (a replay's read-ahead) no caller is outside it: the
    warning is then attributed to the thread's start, in the standard library.
    """
    level = 2  # the caller of warn()
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
