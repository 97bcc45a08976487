"""The compile helper process's main loop (`python -m fungrad.backend.compile_serve`):
compile what the parent sends into the disk cache until its pipe closes.  The parent
side and the protocol are compile_worker.py."""
from __future__ import annotations

import os
import sys

from ..config import config
from . import disk_cache, numba_jit
from .compile_worker import _recv, _send

__all__ = ["serve"]


def serve() -> None:
    """The helper's loop: compile what the parent sends until its pipe closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # prints must not reach the pipe
    while True:
        try:
            req = _recv(requests)
        except EOFError:
            return
        before = dict(disk_cache.stats)
        try:
            with config.override("cache_max_size", req["limit"]):
                saved = numba_jit.compile_to_cache(req["text"], req["name"], req["signature"],
                                                   req["cache_dir"])
            reply = (saved or "not saved",)
        except Exception as e:  # noqa: BLE001 - the parent compiles it and reports
            reply = ("failed", f"{type(e).__name__}: {str(e)[:500]}")
        _send(replies, (*reply, {k: v - before[k] for k, v in disk_cache.stats.items()}))


if __name__ == "__main__":
    serve()
