"""The first-order primitives: each one a block with every rule (impl, shape, jvp,
vjp, vmap, emit and its declared data), written with other primitives only.

- `base.py`: the primitives every other rule uses (convert_element_type,
  broadcast_in_dim, reshape, transpose, reduce_sum and full); it imports no other
  primitive module;
- `elementwise.py`, `shape.py`, `reduce.py`, `indexing.py` (gather/scatter),
  `linalg.py`, in that order, each importing only the ones before it;
- `_util.py`: shape and rule helpers that need no primitive.

This layer sits below `transforms/`; the higher-order primitives, whose rules run
transforms, are in `fungrad.hop`.  Users reach both through `fungrad.lax`.
"""
