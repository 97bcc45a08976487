"""MkDocs hook: a line `::: dotted.name` in a page becomes that object's
reference entry (signature and docstring), read from the installed fungrad.
A name that does not resolve fails the build."""
from __future__ import annotations

import importlib
import inspect
import re

MARKER = re.compile(r"^::: ([\w.]+)\s*$", re.M)


def resolve(dotted: str):
    """The object named `dotted` (module path, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"api reference: cannot import {dotted!r}")


def render(dotted: str) -> str:
    obj = resolve(dotted)
    name = dotted.rsplit(".", 1)[-1]
    try:
        signature = f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        signature = name
    doc = inspect.getdoc(obj) or "(no docstring)"
    kind = "class" if inspect.isclass(obj) else "module" if inspect.ismodule(obj) else "function"
    return (f"### `{dotted}`\n\n*{kind}* `{signature}`\n\n"
            + "\n".join("    " + line if line else "" for line in doc.splitlines()) + "\n")


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
