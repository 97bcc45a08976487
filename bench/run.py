"""`make bench`: workloads W1-W6 of issue 4, fungrad against hand-written NumPy
(the reference, always) and whichever of jax, torch and autograd are importable.

    python bench/run.py                      # every workload, all available systems
    python bench/run.py --quick --workloads W1,W3
    python bench/run.py --systems fungrad,fungrad_jit --markdown out.md

The measuring harness is `bench/anchors.py` (the one the project's targets were
measured with; `bench/workloads.py` holds the losses and the NumPy references).
This script only picks the systems that are installed and passes its
arguments through; see `python bench/run.py --help`.
"""
from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONAL = [("jax_eager", "jax"), ("jax_jit", "jax"), ("torch", "torch"),
            ("torch_func", "torch"), ("autograd", "autograd")]


def available_systems() -> list[str]:
    """numpy and fungrad always; the other libraries when they can be imported."""
    systems = ["numpy", "fungrad", "fungrad_jit"]
    for system, module in OPTIONAL:
        if importlib.util.find_spec(module) is not None:
            systems.append(system)
    return systems


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--systems" or a.startswith("--systems=") for a in argv):
        argv = ["--systems", ",".join(available_systems())] + argv
    sys.path.insert(0, HERE)
    import anchors
    return anchors.main(argv) or 0


if __name__ == "__main__":
    sys.exit(main())
