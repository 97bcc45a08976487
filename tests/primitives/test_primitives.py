"""The per-primitive harness: every entry of `lax.ALL_PRIMITIVES` gets the same checks.

1. `test_every_primitive_has_every_rule` fails on a primitive missing an impl,
   shape, jvp, vjp or vmap rule (and on a Primitive defined in fungrad.lax but not
   listed in ALL_PRIMITIVES).
2. `SPECS` says how to draw valid operands and params for each primitive; the
   property tests run over it:
   - the shape rule agrees with the impl's result (shape and dtype), and a traced
     call typechecks and interprets to the impl's value;
   - jvp agrees with central finite differences;
   - vjp agrees with jvp (the dot-product identity <ct, J t> = <J^T ct, t>);
   - vmap agrees with a Python loop (batch dim at 0 or elsewhere, mixed
     batched / unbatched operands);
   - jvp of vjp agrees with finite differences of vjp (second order), on some;
   - float32 derivatives stay float32;
   - `jit` (numba, for primitives with an emit rule) agrees with the interpreter.

Adding a primitive: add one `SPECS[name] = Spec(...)` entry below (most take one
line with the helpers `elementwise`, `operands`, `fill`; `traced` takes the params
of a primitive with jaxpr params from a trace of its public wrapper).  A primitive
without an entry is skipped by the property tests with a message saying so; test 1
still checks its rules.  `FUNGRAD_HARNESS_SCALE=10` runs 10x more examples.
"""
from __future__ import annotations

import dataclasses
import os
import importlib
import pkgutil
from typing import Any, Callable

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
from fungrad import lax
from fungrad.core import Primitive, ShapedArray, typecheck
from fungrad.interpreter import eval_jaxpr
from fungrad.pytree import tree_flatten

RULES = ("impl", "shape", "jvp", "vjp", "vmap")
# FUNGRAD_HARNESS_SCALE=10 runs every property test with 10x more examples
SCALE = float(os.environ.get("FUNGRAD_HARNESS_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))
F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
I64, I32, BOOL = np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.bool_)
FLOATS = (F64, F32)
NUMERIC = (F64, F32, I64, I32)
ALL_DTYPES = (F64, F32, I64, I32, BOOL)
INTEGRAL = (I64, I32, BOOL)

PRIMS = sorted(lax.ALL_PRIMITIVES, key=lambda p: p.name)


def _is_float(dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


# ---------------------------------------------------------------------------------
# 1. every primitive has every rule
# ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_every_primitive_has_every_rule(prim):
    missing = [kind for kind in RULES if not prim.has_rule(kind)]
    assert not missing, (
        f"primitive '{prim.name}' has no {', '.join(missing)} rule(s): add them below its "
        f"definition ({prim.name}_p.def_<kind>(...)); mark a piecewise-constant primitive "
        f"with def_jvp(nondifferentiable) / def_vjp(nondifferentiable)")


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_declared_options_come_with_their_rules(prim):
    # codegen and simplify read these declarations instead of primitive names
    assert not (prim.loop_relabels or prim.loop_when) or prim.has_rule("loop")
    assert (prim.accumulate_identity is not None) == prim.has_rule("accumulate")
    assert not prim.has_rule("scalar_emit") or (
        prim.kind == "elementwise" and prim.has_rule("emit"))
    assert not prim.commutative or prim.kind == "elementwise"
    assert prim.jvp_nondifferentiable == prim.vjp_nondifferentiable


def _primitive_modules():
    """Every module of the two primitive layers: fungrad.primitives and fungrad.hop."""
    for package in ("fungrad.primitives", "fungrad.hop"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            yield f"{package}.{info.name}", importlib.import_module(f"{package}.{info.name}")


def test_every_lax_primitive_is_listed_in_all_primitives():
    listed = {id(p) for p in lax.ALL_PRIMITIVES}
    unlisted = []
    for module_name, module in _primitive_modules():
        for name, value in vars(module).items():
            if isinstance(value, Primitive) and id(value) not in listed and \
                    value.kind not in ("call",):
                unlisted.append(f"{module_name}.{name}")
    assert not unlisted, (f"primitives defined but missing from lax.ALL_PRIMITIVES: {unlisted}; "
                          "add their module to PRIMITIVE_MODULES in fungrad/lax/__init__.py")


def test_primitive_names_are_unique():
    """Transforms, the printer and the kernel cache identify primitives by name."""
    by_name: dict[str, set] = {}
    for _, module in _primitive_modules():
        for value in vars(module).values():
            if isinstance(value, Primitive):
                by_name.setdefault(value.name, set()).add(id(value))
    clashes = sorted(name for name, ids in by_name.items() if len(ids) > 1)
    assert not clashes, f"several primitives share the names {clashes}"


# ---------------------------------------------------------------------------------
# 2. how to draw operands: the table
# ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Spec:
    """How to draw a valid call of one primitive.

    avals(data, dtype) -> (list of operand ShapedArrays, params dict): shapes and params,
        for operands whose main dtype is `dtype` (one of `dtypes`).
    values(data, avals, params) -> operands: concrete arrays of those avals; drawn
        several times for one set of avals in the vmap test.  Default: `fill` each
        operand from `domain` (one (lo, hi) for all, or a list per operand).
    """
    avals: Callable
    values: Callable | None = None
    domain: Any = (-3.0, 3.0)
    dtypes: tuple = FLOATS
    differentiable: bool = True
    second_order: bool = False
    elements: Any = None            # "distinct", "nonzero", "with_zeros" or None
    rtol: float = 1e-5
    atol: float = 1e-6

    def draw_values(self, data, avals, params):
        if self.values is not None:
            return self.values(data, avals, params)
        domains = self.domain if isinstance(self.domain, list) else [self.domain] * len(avals)
        if self.elements == "distinct" and len(avals) > 1 and all(
                _is_float(a.dtype) for a in avals):
            # no ties across operands either: one distinct vector, split among them
            sizes = [a.size for a in avals]
            lo, hi = domains[0]
            flat = fill(data, ShapedArray((sum(sizes),), F64), lo, hi, "distinct", label="values")
            pieces = np.split(flat, np.cumsum(sizes)[:-1])
            return [p.reshape(a.shape).astype(a.dtype) for p, a in zip(pieces, avals, strict=True)]
        return [fill(data, a, lo, hi, self.elements, label=f"operand {i}")
                for i, (a, (lo, hi)) in enumerate(zip(avals, domains, strict=True))]


def fill(data, aval: ShapedArray, lo=-3.0, hi=3.0, elements=None, label="x"):
    """A concrete array of `aval` with entries in [lo, hi].  elements: "distinct" (no
    ties), "nonzero" (|x| >= 0.25), "with_zeros" (zeros likely), or None."""
    shape, dtype = aval.shape, aval.dtype
    if dtype == BOOL:
        return data.draw(hnp.arrays(BOOL, shape), label=label)
    if np.issubdtype(dtype, np.integer):
        lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
        if elements == "nonzero":
            ints = st.integers(1, max(hi_i, 1)) | st.integers(min(lo_i, -1), -1)
        else:
            ints = st.integers(lo_i, hi_i)
        return data.draw(hnp.arrays(dtype, shape, elements=ints), label=label)
    if elements == "distinct":
        n = int(np.prod(shape, dtype=np.int64))
        order = np.array(data.draw(st.permutations(range(n)), label=f"{label} order"), F64)
        jitter = data.draw(hnp.arrays(F64, (n,), elements=st.floats(0.2, 0.8)),
                           label=f"{label} jitter")
        values = lo + (hi - lo) * (order + jitter) / max(n, 1)
        return values.reshape(shape).astype(dtype)
    # no subnormals: finite differences with steps ~1e-6 cannot see them, and products
    # of them underflow (a known limit of scatter_mul's exclusive products, see its rule)
    real = functools.partial(st.floats, allow_subnormal=False)
    if elements == "nonzero":
        floats = real(0.25, hi) | real(lo, -0.25) if lo < -0.25 else real(max(lo, 0.25), hi)
    elif elements == "with_zeros":
        floats = st.sampled_from([0.0, 0.0, 1.0, -1.5, 2.0]) | real(lo, hi)
    else:
        floats = real(lo, hi)
    return data.draw(hnp.arrays(F64, shape, elements=floats), label=label).astype(dtype)



def draw_shape(data, min_dims=0, max_dims=3, min_side=0, max_side=3, label="shape"):
    return data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                      max_side=max_side), label=label)


def elementwise(n_operands=1, **params_strategies):
    """avals for an n-ary elementwise primitive: one shape, and a 0-d operand sometimes."""
    def avals(data, dtype):
        shape = draw_shape(data)
        shapes = [shape] * n_operands
        if n_operands > 1 and shape and data.draw(st.booleans(), label="a 0-d operand"):
            shapes[data.draw(st.integers(0, n_operands - 1), label="which 0-d")] = ()
        params = {k: data.draw(s, label=k) for k, s in params_strategies.items()}
        return [ShapedArray(s, dtype) for s in shapes], params
    return avals


def operands(fn):
    """Wrap `fn(data, dtype) -> (shapes, params)` (one dtype for every operand)."""
    def avals(data, dtype):
        shapes, params = fn(data, dtype)
        return [ShapedArray(s, dtype) for s in shapes], params
    return avals


def _subset(data, n, label, min_size=0):
    return tuple(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=min_size,
                                          max_size=n), label=label))) if n else ()


SPECS: dict[str, Spec] = {}

# --- elementwise -----------------------------------------------------------------------
_UNARY_DOMAINS = {
    "exp": (-3, 3), "exp2": (-3, 3), "expm1": (-3, 3), "log": (0.1, 5), "log1p": (-0.9, 5),
    "sqrt": (0.1, 5), "rsqrt": (0.1, 5), "sin": (-3, 3), "cos": (-3, 3), "tan": (-1.2, 1.2),
    "asin": (-0.9, 0.9), "acos": (-0.9, 0.9), "atan": (-3, 3), "sinh": (-3, 3),
    "cosh": (-3, 3), "tanh": (-3, 3), "asinh": (-3, 3), "acosh": (1.1, 5),
    "atanh": (-0.9, 0.9), "logistic": (-5, 5), "erf": (-2, 2), "erfc": (-2, 2),
    "erf_inv": (-0.9, 0.9), "lgamma": (0.5, 5),
}
for _name, _dom in _UNARY_DOMAINS.items():
    SPECS[_name] = Spec(elementwise(1), domain=_dom,
                        second_order=_name in ("exp", "log", "sqrt", "tanh", "sin", "logistic"))
SPECS["cbrt"] = Spec(elementwise(1), elements="nonzero")
SPECS["neg"] = Spec(elementwise(1), dtypes=NUMERIC)
SPECS["abs"] = Spec(elementwise(1), dtypes=NUMERIC, elements="nonzero")
SPECS["sign"] = Spec(elementwise(1), dtypes=NUMERIC, differentiable=False)
SPECS["polygamma"] = Spec(elementwise(1, n=st.integers(0, 2)), domain=(0.5, 4), rtol=1e-4)
SPECS["add"] = Spec(elementwise(2), dtypes=NUMERIC, second_order=True)
SPECS["sub"] = Spec(elementwise(2), dtypes=NUMERIC)
SPECS["mul"] = Spec(elementwise(2), dtypes=NUMERIC, second_order=True)
SPECS["div"] = Spec(elementwise(2), dtypes=NUMERIC, domain=[(-3, 3), (-3, 3)],
                    elements="nonzero", second_order=True)
# |x / y| < 1: rem is smooth there (fmod jumps where x / y crosses a nonzero integer)
SPECS["rem"] = Spec(elementwise(2), domain=[(-3, 3), (3.5, 5)])
SPECS["pow"] = Spec(elementwise(2), domain=[(0.5, 3), (-2, 2)], second_order=True)
SPECS["max"] = Spec(elementwise(2), dtypes=NUMERIC, elements="distinct")
SPECS["min"] = Spec(elementwise(2), dtypes=NUMERIC, elements="distinct")
SPECS["atan2"] = Spec(elementwise(2), elements="nonzero")
SPECS["nextafter"] = Spec(elementwise(2), differentiable=False)
SPECS["softplus"] = Spec(elementwise(1), domain=(-5, 5), second_order=True)
SPECS["bce_with_logits"] = Spec(elementwise(2), domain=[(-5, 5), (0, 1)], second_order=True)


def _integer_pow_avals(data, dtype):
    shape = draw_shape(data)
    low = -2 if _is_float(dtype) else 0
    return [ShapedArray(shape, dtype)], {"y": data.draw(st.integers(low, 5), label="y")}


SPECS["integer_pow"] = Spec(_integer_pow_avals, dtypes=NUMERIC, elements="nonzero",
                            second_order=True)
for _name in ("floor", "ceil", "round", "is_finite"):
    SPECS[_name] = Spec(elementwise(1), differentiable=False)
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    SPECS[_name] = Spec(elementwise(2), dtypes=ALL_DTYPES, differentiable=False)
for _name in ("and", "or", "xor"):
    SPECS[_name] = Spec(elementwise(2), dtypes=INTEGRAL, differentiable=False)
SPECS["not"] = Spec(elementwise(1), dtypes=INTEGRAL, differentiable=False)
SPECS["stop_gradient"] = Spec(elementwise(1), dtypes=ALL_DTYPES, differentiable=False)


def _select_avals(data, dtype):
    shape = draw_shape(data)
    shapes = [shape, shape, shape]
    if shape and data.draw(st.booleans(), label="a 0-d operand"):
        shapes[data.draw(st.integers(0, 2), label="which 0-d")] = ()
    return ([ShapedArray(shapes[0], BOOL), ShapedArray(shapes[1], dtype),
             ShapedArray(shapes[2], dtype)], {})


SPECS["select"] = Spec(_select_avals, dtypes=ALL_DTYPES, second_order=True)


def _convert_avals(data, dtype):
    shape = draw_shape(data)
    new = data.draw(st.sampled_from(ALL_DTYPES), label="new_dtype")
    return [ShapedArray(shape, dtype)], {"new_dtype": new}


SPECS["convert_element_type"] = Spec(_convert_avals, dtypes=ALL_DTYPES)


# --- shape --------------------------------------------------------------------------------

@operands
def _broadcast_in_dim_avals(data, dtype):
    out_shape = draw_shape(data, max_dims=4)
    kept = _subset(data, len(out_shape), "kept dims")
    in_shape = tuple(1 if data.draw(st.booleans(), label=f"stretch {d}") else out_shape[d]
                     for d in kept)
    return [in_shape], {"shape": out_shape, "broadcast_dimensions": kept}


SPECS["broadcast_in_dim"] = Spec(_broadcast_in_dim_avals, dtypes=ALL_DTYPES, second_order=True)


@operands
def _reshape_avals(data, dtype):
    shape = draw_shape(data)
    size = int(np.prod(shape, dtype=np.int64))
    options = [(size,), tuple(reversed(shape)), shape + (1,), (1,) + shape]
    if size and size % 2 == 0:
        options.append((2, size // 2))
    return [shape], {"new_sizes": data.draw(st.sampled_from(options), label="new_sizes")}


SPECS["reshape"] = Spec(_reshape_avals, dtypes=ALL_DTYPES)


@operands
def _squeeze_avals(data, dtype):
    shape = list(draw_shape(data, min_dims=1))
    ones = _subset(data, len(shape), "squeezed", min_size=1)
    for d in ones:
        shape[d] = 1
    return [tuple(shape)], {"dimensions": ones}


SPECS["squeeze"] = Spec(_squeeze_avals, dtypes=ALL_DTYPES)


@operands
def _transpose_avals(data, dtype):
    shape = draw_shape(data)
    perm = tuple(data.draw(st.permutations(range(len(shape))), label="permutation"))
    return [shape], {"permutation": perm}


SPECS["transpose"] = Spec(_transpose_avals, dtypes=ALL_DTYPES)


@operands
def _slice_avals(data, dtype):
    shape = draw_shape(data, max_side=5)
    starts, limits, strides = [], [], []
    for i, d in enumerate(shape):
        lo = data.draw(st.integers(0, d), label=f"start {i}")
        starts.append(lo)
        limits.append(data.draw(st.integers(lo, d), label=f"limit {i}"))
        strides.append(data.draw(st.integers(1, 3), label=f"stride {i}"))
    return [shape], {"start_indices": tuple(starts), "limit_indices": tuple(limits),
                     "strides": tuple(strides)}


SPECS["slice"] = Spec(_slice_avals, dtypes=ALL_DTYPES)


@operands
def _rev_avals(data, dtype):
    shape = draw_shape(data)
    return [shape], {"dimensions": _subset(data, len(shape), "dimensions")}


SPECS["rev"] = Spec(_rev_avals, dtypes=ALL_DTYPES)


@operands
def _concatenate_avals(data, dtype):
    shape = draw_shape(data, min_dims=1)
    dim = data.draw(st.integers(0, len(shape) - 1), label="dimension")
    n = data.draw(st.integers(1, 3), label="operands")
    shapes = []
    for i in range(n):
        s = list(shape)
        s[dim] = data.draw(st.integers(0, 3), label=f"size {i}")
        shapes.append(tuple(s))
    return shapes, {"dimension": dim}


SPECS["concatenate"] = Spec(_concatenate_avals, dtypes=ALL_DTYPES)


def _pad_avals(data, dtype):
    shape = draw_shape(data)
    config = []
    for i, d in enumerate(shape):
        interior = data.draw(st.integers(0, 2), label=f"interior {i}")
        full = d + max(0, d - 1) * interior
        lo = data.draw(st.integers(-min(full, 2), 2), label=f"low {i}")
        hi = data.draw(st.integers(-min(full + lo, 2) if full + lo > 0 else 0, 2),
                       label=f"high {i}")
        config.append((lo, hi, interior))
    return [ShapedArray(shape, dtype), ShapedArray((), dtype)], {"padding_config": tuple(config)}


SPECS["pad"] = Spec(_pad_avals, dtypes=ALL_DTYPES)


def _iota_avals(data, dtype):
    shape = draw_shape(data, min_dims=1)
    dim = data.draw(st.integers(0, len(shape) - 1), label="dimension")
    return [], {"dtype": dtype, "shape": shape, "dimension": dim}


SPECS["iota"] = Spec(_iota_avals, dtypes=(F64, I64, I32))


# --- reductions --------------------------------------------------------------------------

def _reduce_axes_avals(data, dtype):
    shape = draw_shape(data, min_dims=1)
    return [ShapedArray(shape, dtype)], {"axes": _subset(data, len(shape), "axes", min_size=1)}


SPECS["reduce_sum"] = Spec(_reduce_axes_avals, dtypes=NUMERIC, second_order=True)
SPECS["reduce_max"] = Spec(_reduce_axes_avals, dtypes=ALL_DTYPES, elements="distinct")
SPECS["reduce_min"] = Spec(_reduce_axes_avals, dtypes=ALL_DTYPES, elements="distinct")
SPECS["reduce_prod"] = Spec(_reduce_axes_avals, dtypes=NUMERIC, domain=(-2, 2),
                            elements="with_zeros", second_order=True)
SPECS["reduce_and"] = Spec(_reduce_axes_avals, dtypes=(BOOL,), differentiable=False)
SPECS["reduce_or"] = Spec(_reduce_axes_avals, dtypes=(BOOL,), differentiable=False)


def _cumulative_avals(data, dtype):
    shape = draw_shape(data, min_dims=1, max_side=4)
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    return [ShapedArray(shape, dtype)], {"axis": axis,
                                         "reverse": data.draw(st.booleans(), label="reverse")}


SPECS["cumsum"] = Spec(_cumulative_avals, dtypes=NUMERIC)
SPECS["cumprod"] = Spec(_cumulative_avals, dtypes=NUMERIC, domain=(-2, 2), elements="with_zeros",
                        second_order=True)
SPECS["cummax"] = Spec(_cumulative_avals, dtypes=ALL_DTYPES, elements="distinct")
SPECS["cummin"] = Spec(_cumulative_avals, dtypes=ALL_DTYPES, elements="distinct")


def _arg_avals(data, dtype):
    shape = draw_shape(data, min_dims=1, min_side=1)
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    index_dtype = data.draw(st.sampled_from((I64, I32)), label="index_dtype")
    return [ShapedArray(shape, dtype)], {"axis": axis, "index_dtype": index_dtype}


SPECS["argmax"] = Spec(_arg_avals, dtypes=ALL_DTYPES, differentiable=False)
SPECS["argmin"] = Spec(_arg_avals, dtypes=ALL_DTYPES, differentiable=False)


# --- dot_general -------------------------------------------------------------------------

def _dot_general_avals(data, dtype):
    sizes = lambda k, label: [data.draw(st.integers(0, 3), label=f"{label} {i}")  # noqa: E731
                              for i in range(k)]
    nb, nc = data.draw(st.integers(0, 2), label="batch dims"), data.draw(
        st.integers(0, 2), label="contracting dims")
    nfx, nfy = data.draw(st.integers(0, 2), label="x free"), data.draw(
        st.integers(0, 2), label="y free")
    b, c, fx, fy = sizes(nb, "batch"), sizes(nc, "contract"), sizes(nfx, "xf"), sizes(nfy, "yf")

    def layout(free, label):
        dims = [("b", i) for i in range(nb)] + [("c", i) for i in range(nc)] + [
            ("f", i) for i in range(len(free))]
        return data.draw(st.permutations(dims), label=f"{label} layout")
    lx, ly = layout(fx, "x"), layout(fy, "y")
    size = {"b": b, "c": c}
    shape_x = [fx[i] if k == "f" else size[k][i] for k, i in lx]
    shape_y = [fy[i] if k == "f" else size[k][i] for k, i in ly]
    pos = lambda lay, k: tuple(lay.index((k, i)) for i in range(nb if k == "b" else nc))  # noqa
    dn = ((pos(lx, "c"), pos(ly, "c")), (pos(lx, "b"), pos(ly, "b")))
    return [ShapedArray(shape_x, dtype), ShapedArray(shape_y, dtype)], {"dimension_numbers": dn}


SPECS["dot_general"] = Spec(_dot_general_avals, dtypes=NUMERIC, second_order=True)


# --- gather / scatter (fungrad/primitives/indexing.py) -------------------------------------------

def _indexing_avals(with_updates):
    def avals(data, dtype):
        shape = draw_shape(data, min_dims=1, min_side=1)
        axes = tuple(data.draw(st.permutations(_subset(data, len(shape), "axes", min_size=1)),
                               label="axes order"))
        batch = draw_shape(data, max_dims=2, label="index batch")
        out = [ShapedArray(shape, dtype), ShapedArray(batch + (len(axes),), I64)]
        if with_updates:
            rest = tuple(d for i, d in enumerate(shape) if i not in axes)
            out.append(ShapedArray(batch + rest, dtype))
        return out, {"axes": axes}
    return avals


def _indexing_values(distinct=False):
    def values(data, avals, params):
        x_aval, idx_aval = avals[0], avals[1]
        floats = [a for a in avals if a is not idx_aval]
        if distinct and _is_float(x_aval.dtype):   # no ties between operand and updates
            sizes = [a.size for a in floats]
            flat = fill(data, ShapedArray((sum(sizes),), F64), -3, 3, "distinct", label="values")
            parts = [p.reshape(a.shape).astype(a.dtype) for p, a in
                     zip(np.split(flat, np.cumsum(sizes)[:-1]), floats, strict=True)]
        else:
            parts = [fill(data, a, label=f"operand {i}") for i, a in enumerate(floats)]
        columns = [data.draw(hnp.arrays(I64, idx_aval.shape[:-1], elements=st.integers(
            -x_aval.shape[a], x_aval.shape[a] - 1)), label=f"indices into axis {a}")
            for a in params["axes"]]
        idx = np.stack(columns, axis=-1) if columns else np.zeros(idx_aval.shape, I64)
        return [parts[0], idx.reshape(idx_aval.shape)] + parts[1:]
    return values


SPECS["gather"] = Spec(_indexing_avals(False), values=_indexing_values(), dtypes=ALL_DTYPES,
                       second_order=True)
for _name in ("scatter", "scatter_add", "scatter_mul"):
    SPECS[_name] = Spec(_indexing_avals(True), values=_indexing_values(), dtypes=NUMERIC,
                        second_order=_name == "scatter_mul")
for _name in ("scatter_min", "scatter_max"):
    SPECS[_name] = Spec(_indexing_avals(True), values=_indexing_values(distinct=True),
                        dtypes=NUMERIC)


# --- control flow (fungrad/hop/ (branching, while_loops, scans)), from traces of the public wrappers --------

def traced(name, build):
    """Spec.avals for a primitive whose params are easiest made by its public wrapper:
    build(data, dtype) -> (fn, example_args); the operands and params are those of the
    one `name` equation in make_jaxpr(fn)(*example_args)."""
    def avals(data, dtype):
        fn, example = build(data, dtype)
        closed = fg.make_jaxpr(fn)(*example)
        eqns = [e for e in closed.jaxpr.eqns if e.prim.name == name]
        assert len(eqns) == 1, f"expected one '{name}' equation in\n{closed.jaxpr}"
        assert not closed.jaxpr.constvars, "the traced function must not close over arrays"
        return [a.aval for a in eqns[0].inputs], dict(eqns[0].params)
    return avals


_BRANCHES = [lambda x: lax.sin(x), lambda x: lax.mul(x, x), lambda x: lax.tanh(lax.add(x, 1.0))]


def _switch_build(data, dtype):
    shape = draw_shape(data, label="operand shape")
    n = data.draw(st.integers(1, 3), label="branches")
    branches = [_BRANCHES[i] for i in data.draw(st.permutations(range(3)), label="order")[:n]]
    example = (np.int64(0), np.zeros(shape, dtype))
    return (lambda i, x: lax.switch(i, branches, x)), example


def _switch_values(data, avals, params):
    index = np.int64(data.draw(st.integers(0, len(params["branches"]) - 1), label="index"))
    return [index] + [fill(data, a, label=f"operand {i}") for i, a in enumerate(avals[1:])]


def _scan_build(data, dtype):
    shape = draw_shape(data, max_dims=2, label="carry shape")
    length = data.draw(st.integers(0, 3), label="length")
    reverse = data.draw(st.booleans(), label="reverse")

    def step(carry, x):
        return lax.add(lax.mul(carry, lax.cos(x)), lax.sin(x)), lax.mul(carry, x)
    example = (np.zeros(shape, dtype), np.zeros((length,) + shape, dtype))
    return (lambda c, xs: lax.scan(step, c, xs, reverse=reverse)), example


def _while_build(data, dtype):
    shape = draw_shape(data, max_dims=2, label="carry shape")

    def body(carry):
        i, x = carry
        return lax.add(i, np.int64(1)), lax.add(lax.mul(x, 0.5), lax.sin(x))
    example = (np.int64(0), np.zeros(shape, dtype))
    return (lambda i, x: lax.while_loop(lambda c: lax.lt(c[0], np.int64(3)), body,
                                        (i, x))), example


SPECS["cond"] = Spec(traced("cond", _switch_build), values=_switch_values, second_order=True)
SPECS["scan"] = Spec(traced("scan", _scan_build), second_order=True, rtol=1e-4, atol=1e-5)
# the int counter starts in [-3, 3]: 0 to 6 trips, the same for every perturbation
SPECS["while"] = Spec(traced("while", _while_build), rtol=1e-4, atol=1e-5)


# --- linalg ---------------------------------------------------------------------------------

def _matrix_avals(n_rhs=0):
    def avals(data, dtype):
        batch = draw_shape(data, max_dims=2, min_side=1, max_side=2, label="batch")
        n = data.draw(st.integers(0, 4), label="n")
        out = [ShapedArray(batch + (n, n), dtype)]
        if n_rhs:
            m = data.draw(st.integers(0, 3), label="m")
            out.append(ShapedArray(batch + (n, m), dtype))
        return out, {}
    return avals


def _well_conditioned(data, aval, kind="general", label="a"):
    """A matrix stack far from singular: random entries plus a dominant diagonal
    (random signs for general matrices), or M M^T + n I for kind="spd"."""
    n = aval.shape[-1]
    m = fill(data, aval.update(dtype=F64), -1, 1, label=label)
    eye = np.eye(n)
    if kind == "spd":
        m = m @ np.swapaxes(m, -1, -2) + (n + 1) * eye
    else:
        signs = fill(data, ShapedArray(aval.shape[:-1], F64), elements="nonzero",
                     label=f"{label} diagonal")
        m = m + (n + 1) * eye * np.sign(signs)[..., None]
    return m.astype(aval.dtype)


def _solve_values(kind):
    def values(data, avals, params):
        a = _well_conditioned(data, avals[0], kind)
        return [a] + [fill(data, b, label="b") for b in avals[1:]]
    return values


def _trisolve_avals(data, dtype):
    avals, _ = _matrix_avals(1)(data, dtype)
    return avals, {"lower": data.draw(st.booleans(), label="lower"),
                   "transpose_a": data.draw(st.booleans(), label="transpose_a")}


SPECS["solve"] = Spec(_matrix_avals(1), values=_solve_values("general"), second_order=True,
                      rtol=1e-4, atol=1e-5)
SPECS["triangular_solve"] = Spec(_trisolve_avals, values=_solve_values("general"),
                                 second_order=True, rtol=1e-4, atol=1e-5)
SPECS["cholesky"] = Spec(_matrix_avals(), values=_solve_values("spd"), second_order=True,
                         rtol=1e-4, atol=1e-5)
SPECS["det"] = Spec(_matrix_avals(), values=_solve_values("general"), second_order=True,
                    rtol=1e-4, atol=1e-5)


def _rectangular_avals(tall_only=False):
    def avals(data, dtype):
        batch = draw_shape(data, max_dims=1, min_side=1, max_side=2, label="batch")
        m = data.draw(st.integers(0, 4), label="m")
        n = data.draw(st.integers(0, m if tall_only else 4), label="n")
        return [ShapedArray(batch + (m, n), dtype)], {}
    return avals


def _spectral_values(kind):
    """Q1 diag(d) Q2^T with distinct, well separated d (eigh: Q2 = Q1; svd: positive d),
    so eigen/singular vectors are locally smooth and finite differences work."""
    def values(data, avals, params):
        (aval,) = avals
        m, n = aval.shape[-2:]
        k = min(m, n)
        rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        if kind == "qr":      # a dominant diagonal keeps R's diagonal away from 0
            return [(rng.uniform(-1, 1, aval.shape) + 3 * np.eye(m, n)).astype(aval.dtype)]
        q1 = np.linalg.qr(rng.normal(size=aval.shape[:-2] + (m, m)))[0]
        q2 = np.linalg.qr(rng.normal(size=aval.shape[:-2] + (n, n)))[0] if kind == "svd" else q1
        d = (1.0 + np.arange(k) + rng.uniform(0.1, 0.6, aval.shape[:-2] + (k,)))
        if kind == "eigh":
            d = d - k / 2 - 0.05      # eigenvalues of both signs, none zero
        core = np.zeros(aval.shape[:-2] + (m, n))
        core[..., range(k), range(k)] = d
        a = q1 @ core @ np.swapaxes(q2, -1, -2)
        return [a.astype(aval.dtype)]
    return values


SPECS["eigh"] = Spec(_matrix_avals(), values=_spectral_values("eigh"), rtol=1e-4, atol=1e-5)
SPECS["svd"] = Spec(_rectangular_avals(), values=_spectral_values("svd"), rtol=1e-4, atol=1e-5)
SPECS["qr"] = Spec(_rectangular_avals(tall_only=True), values=_spectral_values("qr"),
                   second_order=True, rtol=1e-4, atol=1e-5)
SPECS["slogdet"] = Spec(_matrix_avals(), values=_solve_values("general"), second_order=True,
                        rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------
# 3. the property tests
# ---------------------------------------------------------------------------------

def _spec(prim) -> Spec:
    spec = SPECS.get(prim.name)
    if spec is None:
        pytest.skip(f"no SPECS entry for primitive '{prim.name}' yet: add one in "
                    "tests/primitives/test_primitives.py to run its property tests")
    return spec


def _draw_case(data, spec, dtype=None):
    dtype = dtype if dtype is not None else data.draw(st.sampled_from(spec.dtypes), label="dtype")
    avals, params = spec.avals(data, dtype)
    return avals, params, spec.draw_values(data, avals, params)


def _leaves(out):
    return tree_flatten(out)[0]


def _allclose(actual, expected, spec, dtype, what):
    rtol, atol = (spec.rtol, spec.atol) if dtype == F64 else (1e-2, 1e-3)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# --- shape rule, tracing and the interpreter ------------------------------------------------

@settings(max_examples=examples(15))
@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@given(data=st.data())
def test_shape_rule_agrees_with_impl(prim, data):
    spec = _spec(prim)
    avals, params, args = _draw_case(data, spec)
    with np.errstate(all="ignore"):
        expected = prim.impl(*args, **params)
    out_avals = prim.shape_rule(*avals, **params)
    expected_leaves = list(expected) if prim.multiple_results else [expected]
    out_avals = list(out_avals) if prim.multiple_results else [out_avals]
    for aval, value in zip(out_avals, expected_leaves, strict=True):
        assert isinstance(aval, ShapedArray)
        assert aval == ShapedArray.of(np.asarray(value)), (
            f"{prim.name}: shape rule says {aval}, impl returned "
            f"{ShapedArray.of(np.asarray(value))} for {[str(a) for a in avals]} {params}")
    # traced, typechecked and interpreted, the call gives the impl's value
    closed = fg.make_jaxpr(lambda *xs: prim.bind(*xs, **params))(*args)
    typecheck(closed.jaxpr)
    with np.errstate(all="ignore"):
        got = eval_jaxpr(closed.jaxpr, closed.consts, *args)
    for g, e in zip(got, expected_leaves, strict=True):
        np.testing.assert_array_equal(g, e)


# --- derivatives ----------------------------------------------------------------------------

def _diff_setup(prim, data, spec):
    """A float64 case and the function of its float operands; skips what has none."""
    if spec.differentiable:
        dtype = F64 if F64 in spec.dtypes else spec.dtypes[0]
    else:
        dtype = next((d for d in spec.dtypes if _is_float(d)), None)
        if dtype is None:
            pytest.skip(f"'{prim.name}' takes no floating-point operands")
    avals, params, args = _draw_case(data, spec, dtype)
    diff = [i for i, a in enumerate(avals) if _is_float(a.dtype)]
    if not diff:
        pytest.skip(f"'{prim.name}' has no floating-point operands to differentiate")

    def f(*xs):
        full = list(args)
        for i, x in zip(diff, xs, strict=True):
            full[i] = x
        return prim.bind(*full, **params)
    primals = [np.asarray(args[i]) for i in diff]
    return f, primals


def _random_like(data, xs, label):
    return [fill(data, ShapedArray(np.shape(x), np.asarray(x).dtype), -1, 1, label=f"{label} {i}")
            for i, x in enumerate(xs)]


def _float_outputs(out):
    return [np.asarray(o) for o in _leaves(out)]


def _numerical_jvp(f, primals, tangents, eps=1e-6):
    with np.errstate(all="ignore"):
        plus = _float_outputs(f(*[x + eps * t for x, t in zip(primals, tangents, strict=True)]))
        minus = _float_outputs(f(*[x - eps * t for x, t in zip(primals, tangents, strict=True)]))
    return [(p - m) / (2 * eps) if _is_float(p.dtype) else None
            for p, m in zip(plus, minus, strict=True)]


@settings(max_examples=examples(10))
@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@given(data=st.data())
def test_jvp_agrees_with_finite_differences(prim, data):
    spec = _spec(prim)
    f, primals = _diff_setup(prim, data, spec)
    tangents = _random_like(data, primals, "tangent")
    out, t_out = fg.jvp(f, primals, tangents)
    low_precision = any(np.asarray(o).dtype == F32 for o in _leaves(out))
    expected = _numerical_jvp(f, primals, tangents, eps=1e-3 if low_precision else 1e-6)
    for t, e, o in zip(_leaves(t_out), expected, _leaves(out), strict=True):
        if e is None:
            continue
        if not spec.differentiable:
            np.testing.assert_array_equal(t, np.zeros_like(e),
                                          err_msg=f"{prim.name} is piecewise constant")
        else:
            assert np.asarray(t).dtype == np.asarray(o).dtype
            finite = np.isfinite(np.asarray(o))   # e.g. max over an empty axis is -inf
            _allclose(np.where(finite, t, 0), np.where(finite, e, 0), spec,
                      np.asarray(o).dtype, f"jvp of {prim.name}")


@settings(max_examples=examples(10))
@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@given(data=st.data())
def test_vjp_agrees_with_jvp(prim, data):
    spec = _spec(prim)
    f, primals = _diff_setup(prim, data, spec)
    tangents = _random_like(data, primals, "tangent")
    out, t_out = fg.jvp(f, primals, tangents)
    out_leaves = [np.asarray(o) for o in _leaves(out)]
    cts = [fill(data, ShapedArray(o.shape, o.dtype), -1, 1, label=f"ct {i}") if _is_float(o.dtype)
           else np.zeros_like(o) for i, o in enumerate(out_leaves)]
    _, pullback = fg.vjp(f, *primals)
    ct_arg = tuple(cts) if prim.multiple_results else cts[0]
    x_bars = pullback(ct_arg)
    for x, xb in zip(primals, x_bars, strict=True):
        assert np.shape(xb) == np.shape(x) and np.asarray(xb).dtype == np.asarray(x).dtype
    lhs = sum(np.vdot(c, t) for c, t, o in zip(cts, _leaves(t_out), out_leaves, strict=True)
              if _is_float(o.dtype))
    rhs = sum(np.vdot(xb, t) for xb, t in zip(x_bars, tangents, strict=True))
    np.testing.assert_allclose(rhs, lhs, rtol=spec.rtol, atol=spec.atol,
                               err_msg=f"<J^T ct, t> != <ct, J t> for {prim.name}")


@settings(max_examples=examples(4))
@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@given(data=st.data())
def test_float32_derivatives_stay_float32(prim, data):
    spec = _spec(prim)
    if F32 not in spec.dtypes or not spec.differentiable:
        pytest.skip(f"'{prim.name}' is not differentiable on float32 operands")
    avals, params, args = _draw_case(data, spec, F32)
    diff = [i for i, a in enumerate(avals) if a.dtype == F32]
    if not diff:
        pytest.skip(f"'{prim.name}' has no float32 operands here")

    def f(*xs):
        full = list(args)
        for i, x in zip(diff, xs, strict=True):
            full[i] = x
        return prim.bind(*full, **params)
    primals = [np.asarray(args[i]) for i in diff]
    out, t_out = fg.jvp(f, primals, [np.ones_like(x) for x in primals])
    for o, t in zip(_leaves(out), _leaves(t_out), strict=True):
        if _is_float(np.asarray(o).dtype):
            assert np.asarray(t).dtype == np.asarray(o).dtype, f"jvp of {prim.name}"
    _, pullback = fg.vjp(f, *primals)
    cts = [np.ones_like(np.asarray(o)) if _is_float(np.asarray(o).dtype)
           else np.zeros_like(np.asarray(o)) for o in _leaves(out)]
    x_bars = pullback(tuple(cts) if prim.multiple_results else cts[0])
    for xb in x_bars:
        assert np.asarray(xb).dtype == F32, f"vjp of {prim.name} returned {np.asarray(xb).dtype}"


@settings(max_examples=examples(6))
@pytest.mark.parametrize("prim", [p for p in PRIMS if SPECS.get(p.name) is not None
                                  and SPECS[p.name].second_order], ids=lambda p: p.name)
@given(data=st.data())
def test_jvp_of_vjp_agrees_with_finite_differences(prim, data):
    spec = SPECS[prim.name]
    f, primals = _diff_setup(prim, data, spec)
    out = f(*primals)
    cts = [fill(data, ShapedArray(np.shape(o), np.asarray(o).dtype), -1, 1, label=f"ct {i}")
           for i, o in enumerate(_leaves(out))]
    ct_arg = tuple(cts) if prim.multiple_results else cts[0]

    def pulled(*xs):
        return fg.vjp(f, *xs)[1](ct_arg)
    tangents = _random_like(data, primals, "tangent")
    _, second = fg.jvp(pulled, primals, tangents)
    expected = _numerical_jvp(pulled, primals, tangents)
    for s, e in zip(_leaves(second), expected, strict=True):
        np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-5,
                                   err_msg=f"second derivative of {prim.name}")


# --- vmap ----------------------------------------------------------------------------------

@settings(max_examples=examples(10))
@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@given(data=st.data())
def test_vmap_agrees_with_a_loop(prim, data):
    spec = _spec(prim)
    dtype = data.draw(st.sampled_from(spec.dtypes), label="dtype")
    avals, params = spec.avals(data, dtype)
    if not avals:
        pytest.skip(f"'{prim.name}' takes no operands to batch")
    size = data.draw(st.integers(1, 3), label="batch size")
    examples = [spec.draw_values(data, avals, params) for _ in range(size)]
    batched = [data.draw(st.booleans(), label=f"batch operand {i}") for i in range(len(avals))]
    if not any(batched):
        batched[data.draw(st.integers(0, len(avals) - 1), label="forced batched")] = True
    in_axes = tuple(data.draw(st.integers(0, a.ndim), label=f"in_axis {i}") if b else None
                    for i, (a, b) in enumerate(zip(avals, batched, strict=True)))
    stacked = [np.stack([np.asarray(ex[i]) for ex in examples], axis=ax) if ax is not None
               else examples[0][i] for i, ax in enumerate(in_axes)]
    loop_args = [[ex[i] if ax is not None else examples[0][i] for i, ax in enumerate(in_axes)]
                 for ex in examples]
    with np.errstate(all="ignore"):
        per_example = [prim.impl(*a, **params) for a in loop_args]
        got = fg.vmap(lambda *xs: prim.bind(*xs, **params), in_axes=in_axes)(*stacked)
    expected = [np.stack([np.asarray(_leaves(r)[k]) for r in per_example])
                for k in range(len(_leaves(per_example[0])))]
    for g, e in zip(_leaves(got), expected, strict=True):
        assert np.asarray(g).dtype == e.dtype, f"vmap of {prim.name} changed the dtype"
        np.testing.assert_allclose(g, e, rtol=1e-12 if e.dtype == F64 else 1e-5,
                                   atol=1e-12 if e.dtype == F64 else 1e-6,
                                   err_msg=f"vmap of {prim.name}, in_axes={in_axes}")


# --- compiled (numba) against the interpreter -------------------------------------------------

# primitives that lower to statements (helpers, loops) instead of one expression
_LOWERED = ("cholesky", "triangular_solve", "solve", "det", "slogdet", "eigh", "qr", "svd",
            "cumsum", "cumprod", "cummax", "cummin", "scatter_min", "scatter_max")


@pytest.mark.kernels
@settings(max_examples=examples(2))     # each example compiles a kernel (cached on disk)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # a kernel numba rejects runs the impl
@pytest.mark.parametrize("prim", [p for p in PRIMS if p.has_rule("emit") or p.name in _LOWERED],
                         ids=lambda p: p.name)
@given(data=st.data())
def test_jit_agrees_with_the_interpreter(prim, data):
    spec = _spec(prim)
    avals, params, args = _draw_case(data, spec)
    with np.errstate(all="ignore"):
        expected = prim.impl(*args, **params)
        got = fg.jit(lambda *xs: prim.bind(*xs, **params))(*args)
    for g, e in zip(_leaves(got), _leaves(expected), strict=True):
        e = np.asarray(e)
        assert np.asarray(g).dtype == e.dtype, f"jit of {prim.name} changed the dtype"
        tol = 1e-12 if e.dtype == F64 else 1e-5
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol, err_msg=f"jit of {prim.name}")
