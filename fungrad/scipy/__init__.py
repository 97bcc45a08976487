"""`fungrad.scipy`: JAX's `jax.scipy` names, written with fungrad operations so every
transform applies: `special`, `stats`, `linalg`, `optimize`, `signal`.

`import fungrad` does not import this package (nor SciPy); `import fungrad.scipy` does.

    >>> from fungrad.scipy.special import logsumexp
    >>> from fungrad.scipy.stats import norm
"""
from __future__ import annotations

from . import linalg, optimize, signal, special, stats  # noqa: F401

__all__ = ["special", "stats", "linalg", "optimize", "signal"]
