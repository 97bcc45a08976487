"""The on-disk kernel cache: loads in a second process; every artefact is verified
before numba sees it (bit flips, truncation, planted and foreign files are rejected,
never loaded or executed); the folder must be private; a read-only cache is used for
loading; the size is bounded with LRU eviction.

Victims run in subprocesses, so a crash (SIGSEGV from a corrupt object file) fails
the test instead of the suite.
"""
import json
import os
import pickle
import py_compile
import random
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fungrad.backend import disk_cache

IS_ROOT = hasattr(os, "getuid") and os.getuid() == 0
NOBODY = 65534   # a user id to give a folder away to (root only)

# Four programs, so one subprocess exercises four artefacts.
VICTIM = textwrap.dedent("""
    import json, sys, numpy as np, fungrad as fg, fungrad.numpy as fnp
    from fungrad.backend import numba_jit, disk_cache
    x = np.linspace(-1.0, 1.0, 5)
    programs = [
        fg.jit(lambda x: fnp.sum(fnp.tanh(x) ** 2)),                  # issue 18's kernel
        fg.jit(fg.grad(lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x * x)))),
        fg.jit(lambda x: fnp.outer(x, x) @ x + fnp.max(x)),
        fg.jit(fg.grad(lambda x: fnp.sum(fnp.log1p(x * x) * fnp.sin(3.0 * x)))),
    ]
    if len(sys.argv) > 1:   # "n": the first n programs; "a:b": programs a to b-1
        a, _, b = sys.argv[1].rpartition(":")
        programs = programs[int(a or 0):int(b)]
    results = [np.asarray(p(x)).tolist() for p in programs]
    mods = sorted(m for m in sys.modules if m.startswith("_fungrad_kernel_"))
    print(json.dumps(results))
    print(json.dumps(mods))
    print(json.dumps(dict(numba_jit.stats, **disk_cache.stats)))
""")


def _env(cache, **extra):
    env = dict(os.environ, FUNGRAD_CACHE_DIR=str(cache), PYTHONWARNINGS="always")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _victim(cache, n=4, cwd=None, **extra):
    """Run the victim; returns (results, kernel module names, stats, stderr)."""
    r = subprocess.run([sys.executable, "-c", VICTIM, str(n)], capture_output=True, text=True,
                       env=_env(cache, **extra), timeout=600, cwd=cwd)
    assert r.returncode == 0, f"victim died with status {r.returncode}:\n{r.stderr[-3000:]}"
    results, mods, stats = (json.loads(line) for line in r.stdout.splitlines()[-3:])
    return results, mods, stats, r.stderr


def _artefacts(cache):
    kdir = os.path.join(str(cache), disk_cache.KERNELS)
    return sorted(os.path.join(kdir, f) for f in os.listdir(kdir)
                  if f.endswith(disk_cache.SUFFIX) and not f.startswith(".tmp-"))


def _key_of(data: bytes) -> str:
    head = len(disk_cache.MAGIC) + 65
    return data[head:data.index(b"\n", head)].decode()


class _Plant:
    """A pickle that, when loaded, writes a marker file: proof that it was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('executed')",))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The victim's results from a fresh cache, and the artefacts it wrote."""
    cache = tmp_path_factory.mktemp("reference") / "cache"
    results, mods, stats, _ = _victim(cache)
    assert stats["compiled"] == 4 and stats["cache_loaded"] == 0 and stats["written"] == 4
    assert len(mods) == 4
    pristine = {os.path.basename(p): open(p, "rb").read() for p in _artefacts(cache)}
    assert len(pristine) == 4
    return results, mods, pristine


def _fresh_copy(tmp_path, pristine):
    cache = tmp_path / "cache"
    kdir = cache / disk_cache.KERNELS
    kdir.mkdir(parents=True, mode=0o700)
    cache.chmod(0o700)
    for name, data in pristine.items():
        (kdir / name).write_bytes(data)
    return cache


def test_second_process_loads_every_kernel_from_disk(reference, tmp_path):
    results, _, pristine = reference
    cache = _fresh_copy(tmp_path, pristine)
    again, _, stats, stderr = _victim(cache)
    assert again == results
    assert stats["compiled"] == 0 and stats["cache_loaded"] == 4 and stats["rejected"] == 0
    assert "FungradCacheWarning" not in stderr
    assert stat.S_IMODE(os.stat(cache / disk_cache.KERNELS).st_mode) == 0o700


def _flip(data: bytes, rng: random.Random, lo: int, hi: int, flips: int) -> bytes:
    buf = bytearray(data)
    for _ in range(flips):
        i = rng.randrange(lo, min(hi, len(buf)))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _damage(data: bytes, how: str, rng: random.Random) -> bytes:
    key_start = len(disk_cache.MAGIC) + 65
    key_end = data.index(b"\n", key_start)
    if how == "magic":
        return _flip(data, rng, 0, len(disk_cache.MAGIC), 1)
    if how == "digest":
        return _flip(data, rng, len(disk_cache.MAGIC), key_start, 1)
    if how == "key":
        return _flip(data, rng, key_start, key_end, 1)
    if how == "payload":
        return _flip(data, rng, key_end + 1, len(data), 1)
    if how == "payload, 16 flips":
        return _flip(data, rng, key_end + 1, len(data), 16)
    if how == "anywhere, 3 flips":
        return _flip(data, rng, 0, len(data), 3)
    if how == "truncated":
        return data[:rng.randrange(1, len(data))]
    if how == "appended":
        return data + bytes([rng.randrange(256)])
    raise AssertionError(how)


DAMAGES = [("magic", "key", "payload", "truncated"),
           ("digest", "payload, 16 flips", "anywhere, 3 flips", "appended")]


def test_bit_flips_in_cached_files_are_rejected_and_recompiled(reference, tmp_path):
    """Issue 18: flipping bits in numba's cached object file killed the next process
    (SIGSEGV/SIGABRT/SIGILL, 12 of 12 flips).  Every damaged artefact must be
    detected before numba reads it, deleted, and compiled again: same numbers."""
    results, _, pristine = reference
    rng = random.Random(18)
    cache = _fresh_copy(tmp_path, pristine)
    kdir = cache / disk_cache.KERNELS
    for damages in DAMAGES:
        for (name, data), how in zip(sorted(pristine.items()), damages, strict=True):
            damaged = _damage(data, how, rng)
            assert damaged != data
            (kdir / name).write_bytes(damaged)
        got, _, stats, stderr = _victim(cache)
        assert got == results, damages
        assert stats["rejected"] == 4 and stats["compiled"] == 4, (damages, stats)
        assert stats["cache_loaded"] == 0 and stats["fallbacks"] == 0, (damages, stats)
        assert "was rejected" in stderr and "compiling the kernel again" in stderr
        # the damaged files were replaced by sound ones
        for path in _artefacts(cache):
            data = open(path, "rb").read()
            assert disk_cache.unpack(_key_of(data), data)[0] is not None, damages
    got, _, stats, _ = _victim(cache)
    assert got == results and stats["cache_loaded"] == 4 and stats["rejected"] == 0


def test_planted_py_pyc_numba_index_and_pickles_are_never_executed(reference, tmp_path):
    """Issue 12: files planted in the cache folder (.py kernels, .pyc, numba index
    and data files, altered artefacts) were imported and executed."""
    results, mods, pristine = reference
    cache = _fresh_copy(tmp_path, pristine)
    kdir = cache / disk_cache.KERNELS
    pyc_dir = kdir / "__pycache__"
    pyc_dir.mkdir()
    markers = tmp_path / "markers"
    markers.mkdir()
    planted = 0

    def marker():
        nonlocal planted
        planted += 1
        return markers / f"ran-{planted}"

    tag = f"{sys.implementation.cache_tag}"
    pyver = f"py{sys.version_info[0]}{sys.version_info[1]}"
    for mod in mods:
        address = mod.rsplit("_", 1)[1]
        for stem in (mod, f"k_{address}", f"k_{address[:24]}"):
            src = kdir / f"{stem}.py"
            src.write_text(f"open({str(marker())!r}, 'w').write('executed')\n")
            py_compile.compile(str(src), cfile=str(pyc_dir / f"{stem}.{tag}.pyc"))
            for fn in ("kernel", stem):
                (pyc_dir / f"{stem}.{fn}-5.{pyver}.nbi").write_bytes(
                    pickle.dumps(_Plant(marker())))
                (pyc_dir / f"{stem}.{fn}-5.{pyver}.1.nbc").write_bytes(
                    pickle.dumps(_Plant(marker())))
    # modules of the kernels' names beside the victim, where an import by name looks
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for mod in mods:
        (cwd / f"{mod}.py").write_text(f"open({str(marker())!r}, 'w').write('executed')\n")
    # artefacts: a malicious payload under the old digest, and a well-formed artefact
    # of one kernel saved under another kernel's name (foreign)
    names = sorted(pristine)
    first = pristine[names[0]]
    (kdir / names[0]).write_bytes(first[:first.index(b"\n", len(disk_cache.MAGIC) + 65) + 1]
                                  + pickle.dumps(_Plant(marker())))
    for name in names[1:]:
        (kdir / name).write_bytes(disk_cache.pack(_key_of(first), pickle.dumps(_Plant(marker()))))

    got, _, stats, stderr = _victim(cache, cwd=str(cwd))
    assert got == results
    assert list(markers.iterdir()) == [], "a planted file was executed"
    assert stats["rejected"] == 4 and stats["compiled"] == 4
    assert "does not match its SHA-256 digest" in stderr
    assert "holds another kernel than its name says" in stderr


def _forge_everything(cache, marker):
    """Replace every artefact by a perfectly formed one (right digest, right key)
    whose payload runs code: only the folder's privacy stands against it."""
    for path in _artefacts(cache):
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(disk_cache.pack(_key_of(data), pickle.dumps(_Plant(marker))))


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_cache_folder_writable_by_others_is_refused(reference, tmp_path, mode):
    results, _, pristine = reference
    cache = _fresh_copy(tmp_path, pristine)
    marker = tmp_path / "ran"
    _forge_everything(cache, marker)
    before = sorted(os.listdir(cache / disk_cache.KERNELS))
    cache.chmod(mode)
    got, _, stats, stderr = _victim(cache, n=1)
    assert got == results[:1] and not marker.exists()
    assert stats["cache_loaded"] == 0 and stats["compiled"] == 1 and stats["written"] == 0
    assert stderr.count("not using the kernel cache folder") == 1
    assert f"mode {mode:o}" in stderr and "chmod 700" in stderr
    assert sorted(os.listdir(cache / disk_cache.KERNELS)) == before


def test_kernels_subfolder_writable_by_others_is_refused(reference, tmp_path):
    results, _, pristine = reference
    cache = _fresh_copy(tmp_path, pristine)
    marker = tmp_path / "ran"
    _forge_everything(cache, marker)
    (cache / disk_cache.KERNELS).chmod(0o733)
    got, _, stats, stderr = _victim(cache, n=1)
    assert got == results[:1] and not marker.exists() and stats["cache_loaded"] == 0
    assert "not using the kernel cache folder" in stderr


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the folder to another user")
def test_cache_folder_owned_by_another_user_is_refused(reference, tmp_path):
    results, _, pristine = reference
    cache = _fresh_copy(tmp_path, pristine)
    marker = tmp_path / "ran"
    _forge_everything(cache, marker)
    os.chown(cache, NOBODY, NOBODY)
    got, _, stats, stderr = _victim(cache, n=1)
    assert got == results[:1] and not marker.exists() and stats["cache_loaded"] == 0
    assert "owned by another user" in stderr


def test_default_folder_is_created_private_and_empty_setting_disables_it(tmp_path):
    env = _env("", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    del env["FUNGRAD_CACHE_DIR"]
    r = subprocess.run([sys.executable, "-c", VICTIM, "1"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "xdg" / "fungrad"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / disk_cache.KERNELS).st_mode) == 0o700
    assert len(_artefacts(folder)) == 1
    _, _, stats, _ = _victim("", n=1, XDG_CACHE_HOME=tmp_path / "xdg2")
    assert stats["written"] == 0 and stats["compiled"] == 1
    assert not (tmp_path / "xdg2").exists()


def _set_read_only(kdir: str, read_only: bool) -> None:
    """Make the kernels folder unwritable for this user: mode 0500, or for root (whom
    modes do not stop) the immutable attribute; skips the test where neither works."""
    if not IS_ROOT:
        os.chmod(kdir, 0o500 if read_only else 0o700)
        return
    r = subprocess.run(["chattr", "+i" if read_only else "-i", kdir], capture_output=True)
    if r.returncode != 0 and read_only:
        pytest.skip(f"cannot make a folder read-only for root here: {r.stderr!r}")


def test_read_only_cache_is_loaded_and_says_once_why_it_is_not_written(reference, tmp_path):
    """Issue 18: a read-only shared cache was silently ignored (every kernel recompiled)."""
    results, _, pristine = reference
    names = sorted(pristine)
    cache = _fresh_copy(tmp_path, {n: pristine[n] for n in names[:2]})   # two of four
    kdir = str(cache / disk_cache.KERNELS)
    before = sorted(os.listdir(kdir))
    _set_read_only(kdir, True)
    try:
        got, _, stats, stderr = _victim(cache)
        assert got == results
        assert stats["cache_loaded"] == 2 and stats["compiled"] == 2 and stats["written"] == 0
        assert stderr.count("FungradCacheWarning") == 1 and "read-only" in stderr
        assert sorted(os.listdir(kdir)) == before
        # a damaged file in a read-only cache: rejected, left in place, compiled in memory
        path = os.path.join(kdir, names[0])
        if not IS_ROOT:
            os.chmod(path, 0o600)
        with open(path, "r+b") as f:
            f.seek(len(pristine[names[0]]) // 2)
            f.write(b"\x00\xff")
        got, _, stats, stderr = _victim(cache)
        assert got == results and stats["rejected"] == 1 and stats["cache_loaded"] == 1
        assert "ignoring it (the folder is read-only)" in stderr
        assert sorted(os.listdir(kdir)) == before
    finally:
        _set_read_only(kdir, False)


def test_size_limit_evicts_while_kernels_are_written(reference, tmp_path):
    first, _, pristine = reference
    sizes = sorted(len(d) for d in pristine.values())
    limit = sum(sizes) - sizes[0] // 2        # the four do not fit; each one does
    cache = tmp_path / "cache"
    got, _, stats, _ = _victim(cache, FUNGRAD_CACHE_MAX_SIZE=limit)
    assert got == first and stats["written"] == 4 and stats["evicted"] >= 1
    size = sum(os.path.getsize(p) for p in _artefacts(cache))
    assert 0 < size <= limit
    # the most recently written (programs 2 and 3) survived the eviction
    again, _, stats, _ = _victim(cache, n="2:4", FUNGRAD_CACHE_MAX_SIZE=limit)
    assert again == first[2:] and stats["cache_loaded"] == 2 and stats["compiled"] == 0
    assert sum(os.path.getsize(p) for p in _artefacts(cache)) <= limit


# -- the cache folder as a library: LRU eviction, concurrent processes ---------------

def _folder(tmp_path) -> disk_cache.Folder:
    folder = disk_cache.folder_for(str(tmp_path / "cache"))
    assert folder is not None and folder.writable
    return folder


def test_lru_eviction_keeps_recently_read_artefacts(tmp_path):
    folder = _folder(tmp_path)
    payload = os.urandom(10_000)
    limit = 100_000
    keys = [f"kernel {i}" for i in range(11)]
    base = time.time() - 1000
    for i, key in enumerate(keys[:8]):   # 80 KB: under the limit
        assert disk_cache.write_artefact(folder, key, payload, limit)
        os.utime(os.path.join(folder.kernels, disk_cache.artefact_name(key)), (base + i,) * 2)
    assert all(disk_cache.read_artefact(folder, k) == payload for k in keys[:8])
    for i, key in enumerate(keys[:8]):   # (reading refreshed them: set the times again)
        os.utime(os.path.join(folder.kernels, disk_cache.artefact_name(key)), (base + i,) * 2)
    assert disk_cache.read_artefact(folder, keys[0]) == payload   # used now: most recent
    evicted_before = disk_cache.stats["evicted"]
    for key in keys[8:]:
        disk_cache.write_artefact(folder, key, payload, limit)
        folder.last_scan = 0.0          # measure after every write, for the test
    left = {k for k in keys if os.path.exists(
        os.path.join(folder.kernels, disk_cache.artefact_name(k)))}
    assert disk_cache.stats["evicted"] > evicted_before
    assert keys[0] in left and keys[1] not in left and keys[2] not in left
    assert set(keys[8:]) <= left
    assert sum(os.path.getsize(os.path.join(folder.kernels, disk_cache.artefact_name(k)))
               for k in left) <= limit


def test_pack_unpack_round_trip_and_rejections():
    data = disk_cache.pack("k 1", b"payload\nbytes")
    assert disk_cache.unpack("k 1", data) == (b"payload\nbytes", "")
    assert disk_cache.unpack("k 2", data)[0] is None
    assert disk_cache.unpack("k 1", data[:-1])[0] is None
    assert disk_cache.unpack("k 1", b"")[0] is None
    with pytest.raises(ValueError):
        disk_cache.pack("two\nlines", b"")


_WRITER = textwrap.dedent("""
    import os, sys
    from fungrad.backend import disk_cache
    folder = disk_cache.folder_for(sys.argv[1])
    payload = os.urandom(5000)
    for i in range(120):
        key = f"{sys.argv[2]} {i}"
        assert disk_cache.write_artefact(folder, key, payload, 60_000)
        folder.last_scan = 0.0
        got = disk_cache.read_artefact(folder, key)
        assert got in (payload, None), "a torn or foreign read"
    print("ok")
""")


def test_concurrent_processes_write_and_evict_safely(tmp_path):
    cache = str(tmp_path / "cache")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, cache, f"writer{n}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 and o.strip() == "ok" for p, (o, _) in zip(procs, outs)), outs
    folder = disk_cache.folder_for(cache)
    disk_cache.evict(folder, 60_000)
    kdir = os.path.join(cache, disk_cache.KERNELS)
    assert sum(os.path.getsize(p) for p in _artefacts(cache)) <= 60_000
    assert not [f for f in os.listdir(kdir) if f.startswith(".tmp-")]


def test_concurrent_victims_share_one_cache(tmp_path):
    cache = tmp_path / "c"
    procs = [subprocess.Popen([sys.executable, "-c", VICTIM, "2"], env=_env(cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0].splitlines()[0] == outs[1][0].splitlines()[0]
    _, _, stats, _ = _victim(cache, n=2)
    assert stats["cache_loaded"] == 2 and stats["compiled"] == 0


def test_uncreatable_cache_folder_compiles_in_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    results, _, stats, stderr = _victim(blocker / "sub", n=1)
    assert stats["compiled"] == 1 and stats["written"] == 0
    assert "cannot create the kernel cache folder" in stderr
    assert np.isfinite(results[0])
