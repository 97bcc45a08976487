"""Where a test's own source says something: error messages must name the user's
file and line, and the tests mark those lines with a `MARK-...` comment."""
from __future__ import annotations

import os


def line_of(path: str, marker: str) -> int:
    """The number of the first line of `path` holding `marker` (a line calling
    `line_of` does not count)."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "line_of(" not in line:
                return i
    raise AssertionError(f"no line of {path} holds {marker!r}")


def where(path: str, marker: str, fun: str) -> str:
    """'file.py:LINE (in fun)', the location an error message must show."""
    return f"{os.path.basename(path)}:{line_of(path, marker)} (in {fun})"
