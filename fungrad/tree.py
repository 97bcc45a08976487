"""`fungrad.tree`: JAX's `jax.tree` module, short names for `fungrad.tree_util`.

    import fungrad
    fungrad.tree.map(lambda x: 2 * x, {"w": 1.0, "b": [2.0, 3.0]})   # {'b': [4.0, 6.0], 'w': 2.0}
    fungrad.tree.leaves({"w": 1.0, "b": [2.0, 3.0]})                 # [2.0, 3.0, 1.0]
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .pytree import PyTreeDef, flatten_up_to
from .tree_util import (tree_all, tree_flatten, tree_leaves, tree_map, tree_reduce,
                        tree_structure, tree_transpose, tree_unflatten)

__all__ = ["all", "flatten", "leaves", "map", "reduce", "structure", "transpose", "unflatten"]

_NO_INITIALIZER = object()


def all(tree: Any) -> bool:  # noqa: A001 - JAX's name
    """True when every leaf of `tree` is truthy (`jax.tree.all`)."""
    return tree_all(tree)


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """`(leaves, treedef)`: the leaves in order and the structure to rebuild the tree."""
    return tree_flatten(tree, is_leaf)


def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of `tree`, in the order `flatten` gives them."""
    return tree_leaves(tree, is_leaf)


def map(f: Callable, tree: Any, *rest: Any,  # noqa: A001 - JAX's name
        is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """`f` applied leafwise; the trees in `rest` must have `tree`'s structure.

    >>> fungrad.tree.map(lambda a, b: a + b, (1.0, [2.0]), (10.0, [20.0]))   # (11.0, [22.0])
    """
    return tree_map(f, tree, *rest, is_leaf=is_leaf)


def reduce(function: Callable[[Any, Any], Any], tree: Any, initializer: Any = _NO_INITIALIZER,
           is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """`functools.reduce(function, leaves(tree)[, initializer])`."""
    if initializer is _NO_INITIALIZER:
        return tree_reduce(function, tree, is_leaf=is_leaf)
    return tree_reduce(function, tree, initializer, is_leaf=is_leaf)


def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The treedef of `tree` (its structure without the leaves)."""
    return tree_structure(tree, is_leaf)


def transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | None, pytree_to_transpose: Any
              ) -> Any:
    """A tree of structure outer-of-inner turned into inner-of-outer; with
    `inner_treedef=None` the inner structure is read from the first outer leaf."""
    if inner_treedef is None:
        subtrees = flatten_up_to(outer_treedef, pytree_to_transpose)
        if not subtrees:
            raise ValueError("tree.transpose: inner_treedef=None needs at least one outer "
                             "leaf to read the inner structure from; pass inner_treedef")
        inner_treedef = tree_structure(subtrees[0])
    return tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose)


def unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:  # noqa: F811 - JAX's names
    """The tree of structure `treedef` holding `leaves`."""
    return tree_unflatten(treedef, leaves)
