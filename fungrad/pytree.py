"""Pytrees: nested containers (tuple, list, dict, None, namedtuple, registered
classes) whose leaves are arrays.  `tree_flatten` turns one into a flat list of
leaves and a hashable `PyTreeDef`; `PyTreeDef.unflatten` rebuilds it.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict
from typing import Any, Callable, Iterable

__all__ = [
    "PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure",
    "tree_map", "tree_reduce", "tree_all", "tree_transpose", "register_pytree_node",
    "register_pytree_node_class", "register_dataclass", "treedef_is_leaf", "all_leaves",
]

# type -> (flatten: obj -> (children, aux), unflatten: (aux, children) -> obj)
_registry: dict[type, tuple[Callable, Callable]] = {}


def register_pytree_node(nodetype: type, flatten_func: Callable, unflatten_func: Callable) -> None:
    """Register a container type: `flatten_func(x) -> (children, aux_data)` and
    `unflatten_func(aux_data, children) -> x`, as in `jax.tree_util`."""
    if nodetype in _registry:
        raise ValueError(f"register_pytree_node: {nodetype.__name__} is already registered")
    _registry[nodetype] = (flatten_func, unflatten_func)


def register_pytree_node_class(cls: type) -> type:
    """Class decorator: `cls.tree_flatten()` and `cls.tree_unflatten(aux, children)`."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_dataclass(cls: type | None = None, *, data_fields=None, meta_fields=None):
    """Register a dataclass: `data_fields` are children, `meta_fields` static (hashable).

    With no field lists every field is a child.  Usable as a decorator."""
    def register(cls):
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"register_dataclass: {cls.__name__} is not a dataclass")
        data = list(data_fields) if data_fields is not None else [
            f.name for f in dataclasses.fields(cls)
            if meta_fields is None or f.name not in meta_fields]
        meta = list(meta_fields or [])

        def flatten(x):
            return [getattr(x, n) for n in data], tuple(getattr(x, n) for n in meta)

        def unflatten(aux, children):
            kwargs = dict(zip(data, children, strict=True))
            kwargs.update(zip(meta, aux, strict=True))
            return cls(**kwargs)
        register_pytree_node(cls, flatten, unflatten)
        return cls
    return register if cls is None else register(cls)


register_pytree_node(tuple, lambda t: (t, None), lambda _, c: tuple(c))
register_pytree_node(list, lambda x: (x, None), lambda _, c: list(c))
register_pytree_node(type(None), lambda _: ((), None), lambda _, c: None)


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


register_pytree_node(dict, _dict_flatten, lambda keys, c: dict(zip(keys, c, strict=True)))
register_pytree_node(OrderedDict, lambda d: (list(d.values()), tuple(d)),
                     lambda keys, c: OrderedDict(zip(keys, c, strict=True)))
register_pytree_node(
    defaultdict,
    lambda d: (_dict_flatten(d)[0], (d.default_factory, tuple(sorted(d)))),
    lambda aux, c: defaultdict(aux[0], zip(aux[1], c, strict=True)))


def _node_handlers(x):
    handlers = _registry.get(type(x))
    if handlers is None and isinstance(x, tuple) and hasattr(x, "_fields"):  # namedtuple
        return (lambda t: (tuple(t), None), lambda _, c, cls=type(x): cls(*c))
    return handlers


class PyTreeDef:
    """The structure of a pytree: hashable, comparable, can rebuild the tree."""
    __slots__ = ("node_type", "aux", "children", "num_leaves", "_hash")

    def __init__(self, node_type, aux, children: tuple):
        self.node_type = node_type          # None for a leaf
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if node_type is None else sum(c.num_leaves for c in children)
        self._hash = None

    def _key(self):
        return (self.node_type, self.aux, self.children)

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __eq__(self, other):
        return isinstance(other, PyTreeDef) and self._key() == other._key()

    @property
    def num_nodes(self) -> int:
        return 1 + sum(c.num_nodes for c in self.children)

    def unflatten(self, leaves: Iterable) -> Any:
        it = iter(leaves)
        tree = self._build(it)
        if next(it, _sentinel) is not _sentinel:
            raise ValueError(f"unflatten: too many leaves for {self}")
        return tree

    def _build(self, it):
        if self.node_type is None:
            try:
                return next(it)
            except StopIteration:
                raise ValueError(f"unflatten: too few leaves for {self}") from None
        children = [c._build(it) for c in self.children]
        if self.node_type is _NAMEDTUPLE:
            return self.aux(*children)
        return _registry[self.node_type][1](self.aux, children)

    def __repr__(self):
        if self.node_type is None:
            return "*"
        inner = ", ".join(map(repr, self.children))
        if self.node_type is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.node_type is list:
            return f"[{inner}]"
        if self.node_type is dict:
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children)) + "}"
        if self.node_type is type(None):
            return "None"
        name = self.aux.__name__ if self.node_type is _NAMEDTUPLE else self.node_type.__name__
        return f"{name}({inner})"


_sentinel = object()
_NAMEDTUPLE = "namedtuple"
LEAF = PyTreeDef(None, None, ())


def _flatten(x, leaves, is_leaf):
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return LEAF
    node_type = type(x)
    handlers = _registry.get(node_type)
    if handlers is None:
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            children = [_flatten(c, leaves, is_leaf) for c in x]
            return PyTreeDef(_NAMEDTUPLE, node_type, tuple(children))
        leaves.append(x)
        return LEAF
    child_values, aux = handlers[0](x)
    children = [_flatten(c, leaves, is_leaf) for c in child_values]
    return PyTreeDef(node_type, aux, tuple(children))


def tree_flatten(tree: Any, is_leaf: Callable | None = None) -> tuple[list, PyTreeDef]:
    """Flatten a pytree into (leaves, treedef).  `None` is a node with no leaves."""
    leaves: list = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:
    return treedef.unflatten(leaves)


def tree_leaves(tree: Any, is_leaf: Callable | None = None) -> list:
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable | None = None) -> PyTreeDef:
    return tree_flatten(tree, is_leaf)[1]


def treedef_is_leaf(treedef: PyTreeDef) -> bool:
    return treedef.node_type is None


def all_leaves(iterable: Iterable) -> bool:
    return all(tree_structure(x) == LEAF for x in iterable)


def tree_map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable | None = None) -> Any:
    """Apply `f` leafwise; `rest` trees must have `tree`'s structure (or extend it)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    if not rest:
        return treedef.unflatten([f(x) for x in leaves])
    others = [_flatten_up_to(treedef, r) for r in rest]
    return treedef.unflatten([f(*xs) for xs in zip(leaves, *others, strict=True)])


def _flatten_up_to(treedef: PyTreeDef, tree: Any) -> list:
    """Leaves of `tree` cut at `treedef`'s leaves (their subtrees stay whole)."""
    out: list = []

    def go(td, x):
        if td.node_type is None:
            out.append(x)
            return
        if td.node_type is _NAMEDTUPLE:
            ok, children = type(x) is td.aux, list(x) if isinstance(x, tuple) else None
        else:
            handlers = _registry.get(type(x))
            ok = type(x) is td.node_type and handlers is not None
            children, aux = handlers[0](x) if ok else (None, None)
            ok = ok and aux == td.aux
        if not ok or len(children) != len(td.children):
            raise ValueError(f"tree structure mismatch: expected {td}, got {tree_structure(x)}")
        for c_td, c in zip(td.children, children):
            go(c_td, c)
    go(treedef, tree)
    return out


def tree_reduce(f: Callable, tree: Any, initializer: Any = _sentinel, is_leaf=None) -> Any:
    import functools
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _sentinel:
        return functools.reduce(f, leaves)
    return functools.reduce(f, leaves, initializer)


def tree_all(tree: Any) -> bool:
    return all(tree_leaves(tree))


def tree_transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef, tree: Any) -> Any:
    """Turn a tree of trees (outer of inner) into an inner of outer."""
    flat = _flatten_up_to(outer_treedef, tree)
    inner = [_flatten_up_to(inner_treedef, x) for x in flat]
    columns = [outer_treedef.unflatten(col) for col in zip(*inner)] if inner else []
    return inner_treedef.unflatten(columns)


flatten_up_to = _flatten_up_to
