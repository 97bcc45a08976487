"""`python -m fungrad`: commands, outputs, one-line errors with non-zero exit."""
import subprocess
import sys

import pytest

import fungrad as fg
from fungrad.__main__ import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "fungrad", *args], capture_output=True,
                          text=True, timeout=120)


def test_grad_prints_8_in_a_subprocess():
    proc = run("grad", "lambda x: (x + 2)**2 + 3", "2.0")
    assert proc.returncode == 0 and proc.stdout.strip() == "8.0"


def test_jacobian_prints_the_matrix(capsys):
    assert main(["jacobian", "lambda x: fnp.stack([x[0]**2 + 3*x[1], x[1]**2 + 2*x[0]])",
                 "[2, 3]"]) == 0
    assert capsys.readouterr().out.strip() == "[[4., 3.],\n [2., 6.]]"


def test_grad_with_argnums_and_value(capsys):
    assert main(["grad", "lambda x, y: x * y", "2.0", "3.0", "--argnums", "0,1"]) == 0
    assert capsys.readouterr().out.split() == ["3.0", "2.0"]
    assert main(["value", "lambda x: nn.sigmoid(x)", "0"]) == 0
    assert capsys.readouterr().out.strip() == "0.5"


def test_jaxpr_and_its_gradient(capsys, tmp_path):
    assert main(["jaxpr", "lambda x: fnp.sin(x) * x", "1.0"]) == 0
    text = capsys.readouterr().out
    assert "sin a" in text and "mul" in text
    target = tmp_path / "g.dot"
    assert main(["jaxpr", "lambda x: fnp.sin(x) * x", "1.0", "--grad", "--dot",
                 str(target)]) == 0
    text = capsys.readouterr().out
    assert "cos a" in text and f"wrote {target}" in text
    assert target.read_text().startswith("digraph")


def test_help_lists_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("grad", "jacobian", "jaxpr"):
        assert name in proc.stdout


@pytest.mark.parametrize("argv, status, fragment", [
    (["grad", "lambda x: (x +", "2.0"], 2, "bad expression"),
    (["grad", "1 + 2", "2.0"], 2, "must evaluate to a function"),
    (["grad", "lambda x: undefined_name", "2.0"], 1, "NameError"),
    (["grad", "lambda x: x", "abc"], 2, "bad argument 'abc'"),
    (["grad", "lambda x: x * fnp.ones(3)", "1.0"], 1, "must return a scalar"),
    (["grad", "lambda x: x", "1.0", "--argnums", "3"], 2, "bad --argnums"),
])
def test_errors_are_one_line_with_nonzero_exit(capsys, argv, status, fragment):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_hessian_prints_the_matrix(capsys):
    assert main(["hessian", "lambda x: fnp.sum(x ** 3)", "[1, 2]"]) == 0
    assert capsys.readouterr().out.split() == ["[[", "6.,", "0.],", "[", "0.,", "12.]]"]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fungrad {fg.__version__}"
