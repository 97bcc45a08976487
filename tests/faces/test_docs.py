"""Every ```python block of README.md and docs/*.md runs, in order, one namespace
per page; where the block is followed directly by a ```text block, what it
printed must equal that block.  (```py blocks, used for the PyTorch originals,
are shown but not run; ```bash blocks neither.)"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
                   re.S | re.M)


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line number) of every fenced block, indentation removed."""
    found = []
    for m in FENCE.finditer(text):
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").splitlines())
        found.append((m.group("lang"), body, text[:m.start()].count("\n") + 1))
    return found


def examples(page: Path) -> list[tuple[str, str | None, int]]:
    """(code, expected output or None, line) for each python block of a page."""
    found = blocks(page.read_text())
    out = []
    for i, (lang, body, line) in enumerate(found):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(found) and found[i + 1][0] == "text":
            expected = found[i + 1][1]
        out.append((body, expected, line))
    return out


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def test_pages_have_examples():
    assert (ROOT / "README.md") in PAGES
    assert sum(len(examples(p)) for p in PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run_and_print_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # blocks that write files write them here
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    with np.printoptions():              # pages see NumPy's default print options
        for code, expected, line in examples(page):
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                try:
                    exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
                except Exception as e:
                    raise AssertionError(f"{page.name}, block at line {line} failed: "
                                         f"{type(e).__name__}: {e}\n{code}") from e
            if expected is not None:
                assert _normalize(stdout.getvalue()) == _normalize(expected), (
                    f"{page.name}, block at line {line} printed:\n{stdout.getvalue()}\n"
                    f"but the page shows:\n{expected}")


def test_docs_site_nav_pages_exist_and_reference_names_resolve():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = re.findall(r"^  - [^:]+: ([\w-]+\.md)$", config, flags=re.M)
    assert {"index.md", "from-pytorch.md", "how-it-works.md", "sharp-bits.md",
            "api.md"} <= set(nav)
    for page in nav:
        assert (ROOT / "docs" / page).exists(), f"mkdocs.yml's nav names missing {page}"
    import importlib.util
    spec = importlib.util.spec_from_file_location("api_reference",
                                                  ROOT / "docs" / "hooks" / "api_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    rendered = hook.on_page_markdown((ROOT / "docs" / "api.md").read_text(), None, None, None)
    assert ":::" not in rendered and "### `fungrad.grad`" in rendered


if __name__ == "__main__":   # print what each block prints, to write the ```text blocks
    import sys
    for name in sys.argv[1:]:
        page = Path(name)
        ns: dict = {"__name__": "docs"}
        for code, expected, line in examples(page):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{page.name}:{line}", "exec"), ns)
            print(f"--- {page.name}:{line} {'(checked)' if expected is not None else ''}")
            print(buf.getvalue(), end="")
