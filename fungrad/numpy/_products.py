"""Matrix and vector products: `matmul`, `dot`, `vdot`, `inner`, `outer`, `tensordot`,
`kron` and `einsum`.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import lax
from ..errors import FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of
from ._promotion import _convert
from ._coercion import _as_array, _promote, expand_dims, ravel, reshape
from ._shape import broadcast_to, ndim, shape, squeeze
from ._elementwise import conjugate, multiply
from ._reductions import _no_out
from ._diagonals import diagonal

__all__ = ["kron", "matmul", "dot", "vdot", "inner", "outer", "tensordot", "einsum"]


def kron(a, b):
    """Kronecker product: blocks a[i, j] * b."""
    a, b = _promote(_as_array(a), _as_array(b))
    nd = builtins.max(ndim(a), ndim(b))
    a = reshape(a, (1,) * (nd - ndim(a)) + shape(a))
    b = reshape(b, (1,) * (nd - ndim(b)) + shape(b))
    # a[..., i, None] * b[None, ..., j] interleaved, then merged pairwise
    a_e = lax.reshape(a, tuple(v for d in shape(a) for v in (d, 1)))
    b_e = lax.reshape(b, tuple(v for d in shape(b) for v in (1, d)))
    prod = multiply(a_e, b_e)
    return lax.reshape(prod, tuple(da * db for da, db in zip(shape(a), shape(b), strict=True)))


def matmul(a, b):
    """NumPy matmul: vectors are promoted, leading dimensions broadcast."""
    ta, tb = type(a), type(b)
    if (ta is Tracer or tb is Tracer) and (ta is Tracer or ta is np.ndarray) and (
            tb is Tracer or tb is np.ndarray):
        # fast path: 1-d/2-d operands of one dtype (the common case while tracing)
        sa = a._var.aval if ta is Tracer else a
        sb = b._var.aval if tb is Tracer else b
        na, nb = len(sa.shape), len(sb.shape)
        if sa.dtype == sb.dtype and 1 <= na <= 2 and 1 <= nb <= 2 and \
                sa.shape[-1] == sb.shape[0 if nb == 1 else -2]:
            return lax.dot_general_p.bind(a, b, dimension_numbers=(
                ((na - 1,), (0 if nb == 1 else nb - 2,)), ((), ())))
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        raise FungradValueError("matmul: Input operand does not have enough dimensions")
    if na <= 2 and nb <= 2:
        ka, kb = aval_of(a).shape[-1], aval_of(b).shape[0 if nb == 1 else -2]
        if ka != kb:
            raise FungradValueError(
                f"matmul: Input operand 1 has a mismatch in its core dimension 0, with "
                f"gufunc signature (n?,k),(k,m?)->(n?,m?) (size {kb} is different from {ka})")
        return lax.dot_general(a, b, (((na - 1,), (0 if nb == 1 else nb - 2,)), ((), ())))
    # batched: broadcast leading dims, then a batched dot_general
    a2 = a if na > 1 else expand_dims(a, 0)
    b2 = b if nb > 1 else expand_dims(b, -1)
    batch = np.broadcast_shapes(aval_of(a2).shape[:-2], aval_of(b2).shape[:-2])
    a2 = broadcast_to(a2, batch + aval_of(a2).shape[-2:])
    b2 = broadcast_to(b2, batch + aval_of(b2).shape[-2:])
    nbatch = len(batch)
    if aval_of(a2).shape[-1] != aval_of(b2).shape[-2]:
        raise FungradValueError(f"matmul: shapes {aval_of(a).shape} and {aval_of(b).shape} "
                                "do not align")
    out = lax.dot_general(a2, b2, (((nbatch + 1,), (nbatch,)),
                                   (tuple(range(nbatch)), tuple(range(nbatch)))))
    if na == 1:
        out = squeeze(out, -2)
    if nb == 1:
        out = squeeze(out, -1)
    return out


def dot(a, b):
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    if nb == 1 or nb == 2 and na <= 2:
        return matmul(a, b)
    # N-d: contract a's last axis with b's second-to-last
    return lax.dot_general(a, b, (((na - 1,), (nb - 2,)), ((), ())))


dot.__doc__ = ("NumPy's dot: inner product of vectors, matrix product, or sum over the last "
               "axis of a and the second-to-last of b.")


def vdot(a, b):
    """Dot product of the flattened arrays, conjugating the first if it is complex."""
    return dot(conjugate(ravel(a)), ravel(b))


def inner(a, b):
    """Sum product over the last axes of a and b."""
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    return lax.dot_general(a, b, (((na - 1,), (nb - 1,)), ((), ())))


def outer(a, b):
    """Outer product of the flattened arrays: out[i, j] = a[i] * b[j]."""
    a, b = _promote(ravel(a), ravel(b))
    return lax.dot_general(a, b, (((), ()), ((), ())))


def tensordot(a, b, axes=2):
    """Sum products over the given axes (an int n: a's last n with b's first n)."""
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if isinstance(axes, (int, np.integer)):
        ca, cb = tuple(range(na - axes, na)), tuple(range(axes))
    else:
        ca, cb = axes
        ca = (ca,) if np.isscalar(ca) else tuple(ca)
        cb = (cb,) if np.isscalar(cb) else tuple(cb)
        ca = tuple(c % na for c in ca)
        cb = tuple(c % nb for c in cb)
    return lax.dot_general(a, b, ((ca, cb), ((), ())))


# --- einsum ---------------------------------------------------------------------------

_ELLIPSIS_LABELS = [chr(0x3b1 + i) for i in range(24)]  # greek letters, never user labels


def _einsum_parse(subscripts, operands):
    """Labels per operand and for the output, with '...' expanded to private labels."""
    subscripts = subscripts.replace(" ", "")
    inputs, arrow, output = subscripts.partition("->")
    in_specs = inputs.split(",")
    if len(in_specs) != len(operands):
        raise FungradValueError(f"einsum: {len(in_specs)} operand subscripts for "
                                f"{len(operands)} operands in {subscripts!r}")
    n_ellipsis = 0
    labels_in = []
    for spec, op in zip(in_specs, operands, strict=True):
        nd = aval_of(op).ndim
        if "..." in spec:
            head, _, tail = spec.partition("...")
            k = nd - len(head) - len(tail)
            if k < 0 or "." in head + tail:
                raise FungradValueError(f"einsum: bad subscripts {spec!r} for an operand "
                                        f"with {nd} dimensions")
            n_ellipsis = builtins.max(n_ellipsis, k)
            labels = list(head) + _ELLIPSIS_LABELS[24 - k:] + list(tail) if k else \
                list(head) + list(tail)
        else:
            labels = list(spec)
        if len(labels) != nd or not builtins.all(c.isalpha() for c in labels):
            raise FungradValueError(f"einsum: subscripts {spec!r} do not match an operand "
                                    f"with {nd} dimensions")
        labels_in.append(labels)
    ell = _ELLIPSIS_LABELS[24 - n_ellipsis:]
    if arrow:
        if "..." in output:
            head, _, tail = output.partition("...")
            labels_out = list(head) + ell + list(tail)
        else:
            labels_out = list(output)
        if len(set(labels_out)) != len(labels_out):
            raise FungradValueError(f"einsum: output subscript {output!r} repeats a label")
        seen = {c for labels in labels_in for c in labels}
        for c in labels_out:
            if c not in seen:
                raise FungradValueError(f"einsum: output label {c!r} appears in no operand")
    else:
        counts = {}
        for labels in labels_in:
            for c in labels:
                counts[c] = counts.get(c, 0) + 1
        labels_out = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    return labels_in, labels_out


def _einsum_diagonal(x, labels):
    """Take the diagonal over each label repeated within one operand."""
    labels = list(labels)
    while len(set(labels)) != len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i = labels.index(c)
        j = labels.index(c, i + 1)
        x = diagonal(x, 0, i, j)
        labels = [lab for n, lab in enumerate(labels) if n not in (i, j)] + [c]
    return x, labels


def einsum(subscripts, *operands, out=None, optimize=None, precision=None, dtype=None):
    """Einstein summation: 'ij,jk->ik' style subscripts, with '...' and implicit output.

    Lowered to diagonal/reduce_sum per operand, then a chain of dot_general (batch =
    labels shared and still needed, contract = labels shared and not needed), then a
    transpose to the output order.

    >>> fungrad.numpy.einsum("ij,j->i", np.eye(2), np.array([1., 2.]))
    array([1., 2.])
    """
    _no_out("einsum", out)
    if not isinstance(subscripts, str):
        raise FungradTypeError("einsum: only the string form of the subscripts is supported")
    operands = [_as_array(o) for o in operands]
    if not operands:
        raise FungradValueError("einsum: at least one operand is needed")
    operands = _promote(*operands) if dtype is None else [_convert(o, dtype) for o in operands]
    labels_in, labels_out = _einsum_parse(subscripts, operands)
    # sizes per label; size-1 dimensions broadcast against the others
    sizes = {}
    for op, labels in zip(operands, labels_in, strict=True):
        for c, d in zip(labels, aval_of(op).shape, strict=True):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = d
            elif d not in (1, prev):
                raise FungradValueError(
                    f"einsum: label {c!r} has sizes {prev} and {d} in {subscripts!r}")
    terms = []
    for op, labels in zip(operands, labels_in, strict=True):
        op, labels = _einsum_diagonal(op, labels)
        target = tuple(sizes[c] for c in labels)
        if aval_of(op).shape != target:
            op = lax.broadcast_to(op, target)
        terms.append((op, labels))

    def needed(skip):
        """Labels used by the output or by any term not in `skip`."""
        keep = set(labels_out)
        for n, (_, labels) in enumerate(terms):
            if n not in skip:
                keep.update(labels)
        return keep

    # sum out labels that only one term has and the output does not
    for n, (op, labels) in enumerate(terms):
        keep = needed({n})
        axes = [i for i, c in enumerate(labels) if c not in keep]
        if axes:
            op = lax.reduce_sum(op, axes)
            labels = [c for c in labels if c in keep]
        terms[n] = (op, labels)
    acc, acc_labels = terms[0]
    for n in range(1, len(terms)):
        op, labels = terms[n]
        keep = needed(set(range(n + 1)))
        shared = [c for c in acc_labels if c in labels]
        batch = [c for c in shared if c in keep]
        contract = [c for c in shared if c not in keep]
        dims = (([acc_labels.index(c) for c in contract], [labels.index(c) for c in contract]),
                ([acc_labels.index(c) for c in batch], [labels.index(c) for c in batch]))
        acc = lax.dot_general(acc, op, (tuple(map(tuple, dims[0])), tuple(map(tuple, dims[1]))))
        acc_labels = batch + [c for c in acc_labels if c not in shared] + \
            [c for c in labels if c not in shared]
    extra = [i for i, c in enumerate(acc_labels) if c not in labels_out]
    if extra:
        acc = lax.reduce_sum(acc, extra)
        acc_labels = [c for c in acc_labels if c in labels_out]
    return lax.transpose(acc, [acc_labels.index(c) for c in labels_out])
