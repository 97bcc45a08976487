"""`fungrad.misc`: autograd's `autograd.misc` names, for ports of autograd code:
`fungrad.misc.flatten` (autograd.misc.flatten) and `fungrad.misc.optimizers`
(autograd.misc.optimizers: adam, sgd, rmsprop, as loops over a gradient function)."""
from .flatten import flatten  # noqa: F401
from . import optimizers  # noqa: F401

__all__ = ["flatten", "optimizers"]
