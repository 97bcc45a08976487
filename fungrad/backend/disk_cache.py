"""The on-disk kernel cache: a private folder of verified, size-bounded artefacts.

Layout: `<cache_dir>/kernels/<name>.fgk`, one file per compiled kernel and
signature (numba's compiled object code and metadata, as numba's own cache
pickles it).  Each file starts with a header that makes it self-checking:

    fungrad kernel cache 1\\n
    <sha256 of everything after this line, 64 hex digits>\\n
    <the key: kernel content address, numba signature, target CPU>\\n
    <payload bytes>

and `<name>` is the SHA-256 of the key.  A file is written to a temporary name
and renamed into place, so readers never see a torn file.  Before anything is
unpickled the digest and the key are checked; a file that fails (bit flips, a
truncated write, a file copied under another name, a foreign file) is deleted
and reported once, and the kernel is compiled again.  Python never imports
anything from the folder: no `.py`, `.pyc`, or numba index file there is read.

The folder must be private: created with mode 0700; an existing folder that is
writable by group or others, or owned by another user (root excepted), is
refused with a warning and the cache is bypassed, because whoever can write
there could plant a valid-looking artefact.  A folder you cannot write (a
read-only shared cache) is used for loading only, with one note saying why
nothing new is kept.

The folder is bounded by `config.cache_max_size`: after writes, when the total
passes the limit, the least recently used files (by modification time, which
every successful load refreshes) are deleted down to 90% of it.  Deleting is
safe while other processes use the folder: a reader that loses the race misses
and recompiles, and readers never see partial files.

No numba here: `python -m fungrad cache` inspects and clears the folder without
importing it.
"""
from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
import threading
import time
import warnings
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: evictions are not serialised
    fcntl = None


__all__ = ["FungradCacheWarning", "Folder", "folder_for", "read_artefact",
           "write_artefact", "discard", "cache_info", "clear_cache", "evict", "check_folder",
           "artefact_name", "pack", "unpack", "stats", "KERNELS", "SUFFIX"]

KERNELS = "kernels"
SUFFIX = ".fgk"
MAGIC = b"fungrad kernel cache 1\n"
_EVICT_TO = 0.9              # evict down to this fraction of the limit
_RESCAN_SECONDS = 30.0       # re-measure the folder at least this often while writing
_STALE_TMP_SECONDS = 3600.0  # a temporary file this old is a crashed writer's, not in flight

# counters for tests: artefacts rejected (corrupt/foreign), evicted, written
stats = {"rejected": 0, "evicted": 0, "written": 0}


class FungradCacheWarning(RuntimeWarning):
    """The kernel cache folder was refused, is read-only, or held a bad file; kernels
    are compiled instead (results unchanged)."""


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_warned: set = set()
_lock = threading.Lock()


def _warn_once(key, msg: str) -> None:
    """Warn once per process per `key`, at the user's innermost frame."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    numba = sys.modules.get("numba")
    skip = [_PKG_DIR]
    if numba is not None and getattr(numba, "__file__", None):
        skip.append(os.path.dirname(numba.__file__) + os.sep)
    skip_t = tuple(skip)
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(skip_t)
                                 or frame.f_code.co_filename.startswith("<")):
        frame = frame.f_back
    if frame is None:
        warnings.warn(msg, FungradCacheWarning, stacklevel=2)
        return
    module = frame.f_globals.get("__name__", "")
    warnings.warn_explicit(msg, FungradCacheWarning, frame.f_code.co_filename,
                           frame.f_lineno, module=module,
                           registry=frame.f_globals.setdefault("__warningregistry__", {}))


def check_folder(path: str) -> str | None:
    """Why the existing folder `path` must not be trusted, or None if it may be:
    it must be a folder owned by you (or root) that group and others cannot write."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    if hasattr(os, "getuid"):
        uid = os.getuid()
        if st.st_uid not in (uid, 0):
            return f"it is owned by another user (uid {st.st_uid}, you are {uid})"
        if st.st_mode & 0o022:
            who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002))
                               if st.st_mode & bit)
            return (f"it is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}), so "
                    "another user could plant code there")
    return None


class Folder:
    """A cache folder that passed the checks: where the artefacts are, whether this
    process may write there, and the bookkeeping of the size limit."""

    def __init__(self, root: str, kernels: str, writable: bool):
        self.root, self.kernels, self.writable = root, kernels, writable
        self.total = None          # bytes at the last scan (None: not scanned yet)
        self.last_scan = 0.0
        self.written = 0           # bytes this process wrote since the last scan

    def __repr__(self) -> str:
        return f"Folder({self.kernels!r}, writable={self.writable})"


_folders: dict = {}


def _make_private(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def folder_for(path: str) -> Folder | None:
    """The checked cache folder for `path` (config.cache_dir), or None when the disk
    cache is off, refused or unusable (each reason is reported once per process)."""
    if not path:
        return None
    folder = _folders.get(path)
    if folder is not None or path in _folders:
        return folder
    folder = _open(path)
    _folders[path] = folder
    return folder


def _open(path: str) -> Folder | None:
    kernels = os.path.join(path, KERNELS)
    for where in (path, kernels):
        if not os.path.exists(where):
            try:
                _make_private(where)
            except OSError as e:
                if where == kernels and os.path.isdir(path) and check_folder(path) is None:
                    _warn_once(("read-only", path),
                               f"fungrad: the kernel cache {path} is read-only and holds no "
                               f"kernels ({e.strerror or e}); kernels are compiled in memory "
                               "and not kept. Set FUNGRAD_CACHE_DIR to a folder you can write "
                               "to keep them.")
                else:
                    _warn_once(("create", path),
                               f"fungrad: cannot create the kernel cache folder {where} "
                               f"({e.strerror or e}); kernels are compiled in memory and not "
                               "kept. Set FUNGRAD_CACHE_DIR to a folder you can write.")
                return None
        try:
            reason = check_folder(where)
        except OSError as e:
            reason = f"it cannot be read ({e.strerror or e})"
        if reason is not None:
            _warn_once(("refused", where),
                       f"fungrad: not using the kernel cache folder {where}: {reason}. "
                       "Kernels are compiled in memory and not kept. Make it private "
                       f"(chmod 700 {where}) or set FUNGRAD_CACHE_DIR to a private folder.")
            return None
    writable = os.access(kernels, os.W_OK | os.X_OK)
    if not writable:
        _warn_once(("read-only", path),
                   f"fungrad: the kernel cache {kernels} is read-only for you: kernels found "
                   "there are loaded, new ones are compiled in memory and not kept. Set "
                   "FUNGRAD_CACHE_DIR to a folder you can write to keep them.")
    return Folder(path, kernels, writable)


def artefact_name(key: str) -> str:
    """The file name of the artefact with `key`."""
    return hashlib.sha256(key.encode()).hexdigest()[:40] + SUFFIX


def pack(key: str, payload: bytes) -> bytes:
    """The bytes of an artefact file: header (magic, digest, key) and payload."""
    if "\n" in key:
        raise ValueError("a cache key must be one line")
    body = key.encode() + b"\n" + payload
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def unpack(key: str, data: bytes) -> tuple[bytes | None, str]:
    """(payload, "") when `data` is a sound artefact for `key`, else (None, why not)."""
    if not data.startswith(MAGIC):
        return None, "its header is not a fungrad kernel cache header"
    head = len(MAGIC)
    digest, body = data[head:head + 64], data[head + 65:]
    if data[head + 64:head + 65] != b"\n" or hashlib.sha256(body).hexdigest().encode() != digest:
        return None, "its content does not match its SHA-256 digest (corrupt or altered)"
    expected = key.encode() + b"\n"
    if not body.startswith(expected):
        return None, "it holds another kernel than its name says (foreign or misplaced)"
    return body[len(expected):], ""


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def discard(folder: Folder, key: str, why: str) -> None:
    """Delete the artefact of `key` (when the folder is writable) and report it once."""
    path = os.path.join(folder.kernels, artefact_name(key))
    stats["rejected"] += 1
    deleted = folder.writable and _unlink(path)
    action = "deleted it; compiling the kernel again" if deleted else \
        "ignoring it (the folder is read-only); compiling the kernel in memory"
    _warn_once(("bad", path), f"fungrad: kernel cache file {path} was rejected: {why}; {action}.")


def read_artefact(folder: Folder, key: str) -> bytes | None:
    """The verified payload stored under `key`, or None (missing, or rejected and
    deleted).  A hit refreshes the file's time, the clock of LRU eviction."""
    path = os.path.join(folder.kernels, artefact_name(key))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        _warn_once(("unreadable", path), f"fungrad: cannot read kernel cache file {path} "
                                         f"({e.strerror or e}); compiling the kernel again.")
        return None
    payload, why = unpack(key, data)
    if payload is None:
        discard(folder, key, why)
        return None
    if folder.writable:
        try:
            os.utime(path)
        except OSError:
            pass
    return payload


def write_artefact(folder: Folder, key: str, payload: bytes, limit: int) -> bool:
    """Store `payload` under `key` atomically, then keep the folder under `limit`
    bytes; False (reported once) when it cannot be written."""
    if not folder.writable or limit <= 0:
        return False
    data = pack(key, payload)
    if len(data) > limit:
        return False
    path = os.path.join(folder.kernels, artefact_name(key))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder.kernels, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
    except OSError as e:
        _warn_once(("write", folder.root), f"fungrad: cannot write to the kernel cache "
                   f"{folder.kernels} ({e.strerror or e}); kernels are compiled in memory "
                   "and not kept.")
        return False
    stats["written"] += 1
    folder.written += len(data)
    now = time.monotonic()
    if (folder.total is None or folder.total + folder.written > limit
            or now - folder.last_scan > _RESCAN_SECONDS):
        evict(folder, limit)
    return True


class _Entry(NamedTuple):
    path: str
    size: int
    mtime: float


def _entries(kernels: str) -> list[_Entry]:
    """Every regular file under `kernels` (artefacts, temporaries, and files of older
    fungrad layouts, which are evicted like the rest)."""
    found = []
    stack = [kernels]
    while stack:
        where = stack.pop()
        try:
            with os.scandir(where) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False) or e.is_symlink():
                            st = e.stat(follow_symlinks=False)
                            found.append(_Entry(e.path, st.st_size, st.st_mtime))
                    except OSError:
                        continue
        except OSError:
            continue
    return found


def evict(folder: Folder, limit: int) -> int:
    """Measure the folder; past `limit` bytes delete the least recently used files
    down to 90% of it.  Returns the number of files deleted."""
    lock_fd = None
    if fcntl is not None:
        try:
            lock_fd = os.open(os.path.join(folder.kernels, ".evict.lock"),
                              os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if lock_fd is not None:   # another process is evicting right now
                os.close(lock_fd)
                folder.last_scan, folder.written = time.monotonic(), 0
                return 0
            lock_fd = None
    try:
        entries = [e for e in _entries(folder.kernels)
                   if os.path.basename(e.path) != ".evict.lock"]
        total = sum(e.size for e in entries)
        deleted = 0
        if total > limit:
            target = int(limit * _EVICT_TO)
            stale = time.time() - _STALE_TMP_SECONDS
            for e in sorted(entries, key=lambda e: e.mtime):
                if total <= target:
                    break
                if os.path.basename(e.path).startswith(".tmp-") and e.mtime > stale:
                    continue        # another process is writing it right now
                if _unlink(e.path):
                    deleted += 1
                total -= e.size
        stats["evicted"] += deleted
        folder.total, folder.last_scan, folder.written = total, time.monotonic(), 0
        return deleted
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def cache_info(path: str, limit: int) -> dict:
    """What `python -m fungrad cache` shows: the folder, its state, files and bytes."""
    kernels = os.path.join(path, KERNELS) if path else ""
    info = {"folder": path, "kernels": kernels, "state": "", "artefacts": 0,
            "other_files": 0, "bytes": 0, "limit": limit}
    if not path:
        info["state"] = "disabled (FUNGRAD_CACHE_DIR is empty)"
        return info
    if not os.path.exists(path):
        info["state"] = "not created yet"
        return info
    reasons = []
    for where in (path, kernels):
        if os.path.exists(where):
            try:
                reason = check_folder(where)
            except OSError as e:
                reason = f"it cannot be read ({e.strerror or e})"
            if reason:
                reasons.append(f"{where}: {reason}")
    if reasons:
        info["state"] = "refused (not used): " + "; ".join(reasons)
    elif os.path.isdir(kernels) and not os.access(kernels, os.W_OK | os.X_OK):
        info["state"] = "read-only (kernels are loaded, new ones are not kept)"
    else:
        info["state"] = "private, in use"
    for e in _entries(kernels) if os.path.isdir(kernels) else []:
        name = os.path.basename(e.path)
        if name == ".evict.lock":
            continue
        if name.endswith(SUFFIX) and not name.startswith(".tmp-") \
                and os.path.dirname(e.path) == kernels:
            info["artefacts"] += 1
        else:
            info["other_files"] += 1
        info["bytes"] += e.size
    return info


def clear_cache(path: str) -> tuple[int, int]:
    """Delete every file under `<path>/kernels` (and its empty sub-folders); returns
    (files deleted, bytes freed).  The folder itself stays."""
    kernels = os.path.join(path, KERNELS)
    if not path or not os.path.isdir(kernels):
        return 0, 0
    count = freed = 0
    for e in _entries(kernels):
        if os.path.basename(e.path) == ".evict.lock":
            continue
        if _unlink(e.path):
            count += 1
            freed += e.size
    for where, dirs, _files in sorted(os.walk(kernels), key=lambda w: -len(w[0])):
        if where != kernels:
            try:
                os.rmdir(where)
            except OSError:
                pass
    for folder in _folders.values():
        if folder is not None and folder.root == path:
            folder.total = None
    return count, freed
