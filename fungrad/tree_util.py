"""`jax.tree_util`-compatible names: flatten, unflatten and map over pytrees."""
from .pytree import (PyTreeDef, all_leaves, register_dataclass, register_pytree_node,
                     register_pytree_node_class, tree_all, tree_flatten, tree_leaves, tree_map,
                     tree_reduce, tree_structure, tree_transpose, tree_unflatten,
                     treedef_is_leaf)

__all__ = ["PyTreeDef", "all_leaves", "register_dataclass", "register_pytree_node",
           "register_pytree_node_class", "tree_all", "tree_flatten", "tree_leaves", "tree_map",
           "tree_reduce", "tree_structure", "tree_transpose", "tree_unflatten", "treedef_is_leaf"]
