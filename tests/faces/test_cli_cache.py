"""`python -m fungrad cache` (info / clear) and `--safe` expressions."""
import os
import subprocess
import sys

import pytest

import fungrad as fg
from fungrad.__main__ import main
from fungrad.backend import disk_cache


def run(*args, **env):
    return subprocess.run([sys.executable, "-m", "fungrad", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, **env))


@pytest.fixture
def cache(tmp_path):
    folder = str(tmp_path / "cache")
    with fg.config.override("cache_dir", folder):
        yield folder


def _fill(folder, n, size=3000):
    f = disk_cache.folder_for(folder)
    for i in range(n):
        assert disk_cache.write_artefact(f, f"kernel {i}", os.urandom(size), 10**9)


def test_cache_info_then_clear(cache, capsys):
    _fill(cache, 3)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"kernel cache: {os.path.join(cache, 'kernels')}" in out
    assert "state:        private, in use" in out
    assert "kernels:      3 files, 9.1 KB (limit 256.0 MB" in out
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.strip().startswith("removed 3 files (9.1 KB)")
    assert main(["cache", "info"]) == 0
    assert "kernels:      0 files" in capsys.readouterr().out
    assert os.path.isdir(os.path.join(cache, "kernels"))     # the folder stays


def test_cache_info_counts_leftovers_and_names_a_refused_folder(cache, capsys):
    _fill(cache, 1)
    old = os.path.join(cache, "kernels", "__pycache__")
    os.makedirs(old)
    with open(os.path.join(old, "k_0123.kernel-5.py311.nbi"), "wb") as f:
        f.write(b"x" * 100)
    os.chmod(cache, 0o777)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "refused (not used)" in out and "writable by group and others" in out
    assert "other files:  1" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 files" in capsys.readouterr().out
    assert not os.path.exists(old)


def test_cache_command_in_a_subprocess_does_not_import_numba(tmp_path):
    code = ("import sys; from fungrad.__main__ import main; main(['cache']); "
            "print('numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, FUNGRAD_CACHE_DIR=str(tmp_path / "c"),
                                             FUNGRAD_CACHE_MAX_SIZE="64M"))
    assert r.returncode == 0, r.stderr
    assert "not created yet" in r.stdout and "limit 64.0 MB" in r.stdout
    assert r.stdout.strip().endswith("False")


def test_help_says_the_expression_is_python_code():
    proc = run("grad", "--help")
    assert proc.returncode == 0
    assert "Python code" in proc.stdout and "--safe" in proc.stdout
    assert "cache" in run("--help").stdout


SAFE_OK = [
    ("grad", "lambda x: fnp.sum(fnp.sin(x) * x.T) ** 2 + fnp.linalg.norm(x)", "[1, 2]"),
    ("value", "lambda x, y: nn.sigmoid(x) * -y + fnp.where(x > 0, 1.0, 2.0)", "0"),
    ("value", "lambda x: fnp.einsum('i,i->', x, x[::-1]) + x[0] / 2 + x.sum()", "[1, 2]"),
    ("jacobian", "lambda x: fnp.stack([x[0]**2 + 3*x[1], x[1]**2 + 2*x[0]])", "[2, 3]"),
]


@pytest.mark.parametrize("command, expr, arg", SAFE_OK)
def test_safe_expressions_give_the_same_results(capsys, command, expr, arg):
    args = [command, expr, arg] + (["1.0"] if "y" in expr.split(":")[0] else [])
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert main(args + ["--safe"]) == 0
    assert capsys.readouterr().out == plain


@pytest.mark.parametrize("expr", [
    "__import__('os').system('touch MARK')",
    "lambda x: __import__('os').system('touch MARK')",
    "lambda x: x.__class__.__mro__",
    "lambda x: x.tofile('MARK')",
    "lambda x: fnp.np.save('MARK', x)",
    "lambda x: fnp.builtins.exec('open(\"MARK\", \"w\")')",
    "lambda x: np.save('MARK', x)",
    "lambda x: fg.grad",
    "lambda x: fnp",
    "lambda x: fnp.linalg",
    "lambda x: [open('MARK', 'w') for y in x]",
    "lambda x: (fnp := x)",
    "lambda x, *rest: x",
    "lambda x, f=print: x",
    "lambda x: (lambda: open('MARK', 'w'))()",
    "lambda x: x.sum.__globals__",
    "lambda x: b'bytes'",
    "lambda fnp: fnp",
    "lambda x: not x",
    "lambda x: {'a': x}",
    "lambda x: fnp.Tracer.mro()[1]()",
    "lambda x: fnp.Tracer.mro",
    "lambda x: x[0](x)",
])
def test_safe_refuses_anything_outside_the_grammar(tmp_path, capsys, expr, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["value", "--safe", expr.replace("MARK", str(tmp_path / "mark")), "1.0"]) == 2
    err = capsys.readouterr().err
    assert "--safe:" in err and "not allowed" in err and "drop --safe" in err
    assert not (tmp_path / "mark").exists() and not list(tmp_path.iterdir())


def test_environment_makes_safe_the_default(tmp_path):
    mark = tmp_path / "mark"
    proc = run("value", f"lambda x: open({str(mark)!r}, 'w')", "1.0", FUNGRAD_CLI_SAFE="1")
    assert proc.returncode == 2 and "--safe:" in proc.stderr and not mark.exists()
    proc = run("value", "lambda x: fnp.exp(x)", "0.0", FUNGRAD_CLI_SAFE="1")
    assert proc.returncode == 0 and proc.stdout.strip() == "1.0"
