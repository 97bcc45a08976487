"""fungrad.tree_util (fungrad/pytree.py): flatten/unflatten round trips, node
registration, tree_map over several trees, and structure mismatch errors."""
import dataclasses
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
from fungrad import tree_util as tu

Point = namedtuple("Point", ["x", "y"])


class Pair:
    """A user container registered with register_pytree_node; `tag` is static."""

    def __init__(self, first, second, tag="pair"):
        self.first, self.second, self.tag = first, second, tag

    def __eq__(self, other):
        return (type(other) is Pair and (self.first, self.second, self.tag)
                == (other.first, other.second, other.tag))


tu.register_pytree_node(Pair, lambda p: ((p.first, p.second), p.tag),
                        lambda tag, children: Pair(*children, tag=tag))


@tu.register_pytree_node_class
class Box:
    def __init__(self, items, name):
        self.items, self.name = items, name

    def tree_flatten(self):
        return list(self.items), self.name

    @classmethod
    def tree_unflatten(cls, name, children):
        return cls(tuple(children), name)


@tu.register_dataclass
@dataclasses.dataclass
class Params:
    w: object
    b: object


@dataclasses.dataclass
class Layer:
    weight: object
    size: int


tu.register_dataclass(Layer, data_fields=["weight"], meta_fields=["size"])


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------

def _nodes(children):
    return st.one_of(
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
        st.tuples(children, children).map(lambda t: Point(*t)),
        st.tuples(children, children).map(lambda t: Pair(*t)),
        st.tuples(children, children).map(lambda t: Params(*t)),
    )


TREES = st.recursive(st.one_of(st.integers(-5, 5), st.none()), _nodes, max_leaves=12)


def _count_leaves(tree):
    if tree is None:
        return 0
    if isinstance(tree, int):
        return 1
    if isinstance(tree, dict):
        return sum(map(_count_leaves, tree.values()))
    if isinstance(tree, Pair):
        return _count_leaves(tree.first) + _count_leaves(tree.second)
    if isinstance(tree, Params):
        return _count_leaves(tree.w) + _count_leaves(tree.b)
    return sum(map(_count_leaves, tree))


@given(tree=TREES)
def test_flatten_unflatten_round_trip(tree):
    leaves, treedef = tu.tree_flatten(tree)
    assert len(leaves) == treedef.num_leaves == _count_leaves(tree)
    assert all(isinstance(x, int) for x in leaves)       # None is a node, never a leaf
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert rebuilt == tree and type(rebuilt) is type(tree)
    assert tu.tree_structure(rebuilt) == treedef
    assert hash(tu.tree_structure(rebuilt)) == hash(treedef)
    assert tu.tree_leaves(tree) == leaves


@given(tree=TREES)
def test_tree_map_over_several_trees(tree):
    doubled = tu.tree_map(lambda x: 2 * x, tree)
    assert tu.tree_structure(doubled) == tu.tree_structure(tree)
    summed = tu.tree_map(lambda a, b, c: a + b + c, tree, tree, doubled)
    assert tu.tree_leaves(summed) == [4 * x for x in tu.tree_leaves(tree)]
    assert tu.tree_structure(summed) == tu.tree_structure(tree)


def test_containers_keep_their_types_and_order():
    tree = {"b": [1, (2, None)], "a": Point(3, 4), "c": OrderedDict([("z", 5), ("y", 6)])}
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == [3, 4, 1, 2, 5, 6]                  # dict keys sorted, OrderedDict kept
    rebuilt = treedef.unflatten([10 * x for x in leaves])
    assert rebuilt == {"b": [10, (20, None)], "a": Point(30, 40),
                       "c": OrderedDict([("z", 50), ("y", 60)])}
    assert type(rebuilt["a"]) is Point and type(rebuilt["c"]) is OrderedDict
    assert list(rebuilt["c"]) == ["z", "y"]
    dd = defaultdict(list, {"q": 1, "p": 2})
    back = tu.tree_map(lambda x: x + 1, dd)
    assert type(back) is defaultdict and back.default_factory is list and back == {"q": 2, "p": 3}


def test_leaves_and_empty_containers():
    arr = np.arange(3.0)
    leaves, treedef = tu.tree_flatten(arr)
    assert leaves == [arr] and tu.treedef_is_leaf(treedef) and treedef.unflatten([7]) == 7
    for empty in ((), [], {}, None):
        leaves, treedef = tu.tree_flatten(empty)
        assert leaves == [] and not tu.treedef_is_leaf(treedef)
        assert treedef.unflatten([]) == empty
    assert tu.tree_structure(()) != tu.tree_structure([]) != tu.tree_structure(None)
    assert tu.all_leaves([1, arr, 2.0]) and not tu.all_leaves([1, (2,)])


def test_structures_compare_by_type_and_keys():
    s = tu.tree_structure
    assert s((1, 2)) == s((3, 4)) and s((1, 2)) != s([1, 2])
    assert s({"a": 1}) != s({"b": 1})
    assert s(Point(1, 2)) != s((1, 2))
    assert s(Pair(1, 2, tag="u")) != s(Pair(1, 2, tag="v"))
    assert repr(s({"a": (1, [2, None])})) == "{'a': (*, [*, None])}"


def test_is_leaf_stops_flattening():
    tree = {"a": (1, 2), "b": [3]}
    leaves, treedef = tu.tree_flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), 3]
    assert treedef.unflatten(["t", 4]) == {"a": "t", "b": [4]}


# ---------------------------------------------------------------------------
# registered nodes
# ---------------------------------------------------------------------------

def test_registered_node_round_trips_with_its_static_data():
    tree = [Pair(1, Pair(2, 3, tag="inner")), Box((4, 5), "box")]
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == [1, 2, 3, 4, 5]
    rebuilt = treedef.unflatten(leaves)
    assert rebuilt[0] == tree[0] and rebuilt[0].second.tag == "inner"
    assert type(rebuilt[1]) is Box and rebuilt[1].items == (4, 5) and rebuilt[1].name == "box"


def test_register_dataclass_with_meta_fields():
    layer = Layer(weight=np.ones(2), size=2)
    leaves, treedef = tu.tree_flatten(layer)
    assert len(leaves) == 1 and leaves[0] is layer.weight
    assert treedef.unflatten([5.0]) == Layer(weight=5.0, size=2)
    assert tu.tree_structure(Layer(1.0, 2)) != tu.tree_structure(Layer(1.0, 3))
    with pytest.raises(TypeError, match="is not a dataclass"):
        tu.register_dataclass(Pair)


def test_registering_a_type_twice_is_an_error():
    with pytest.raises(ValueError, match="Pair is already registered"):
        tu.register_pytree_node(Pair, lambda p: ((), None), lambda aux, c: Pair(0, 0))
    assert tu.tree_leaves(Pair(1, 2)) == [1, 2]          # the first registration stays


def test_registered_nodes_pass_through_transforms():
    def loss(p):
        return (p.first * p.second).sum()
    p = Pair(np.array([1.0, 2.0]), np.array([3.0, 4.0]), tag="t")
    g = fg.grad(loss)(p)
    assert type(g) is Pair and g.tag == "t"
    np.testing.assert_allclose(g.first, p.second)
    np.testing.assert_allclose(g.second, p.first)
    params = Params(w=np.array(2.0), b=np.array(1.0))
    out = fg.vmap(lambda q, x: q.w * x + q.b, in_axes=(None, 0))(params, np.arange(3.0))
    np.testing.assert_allclose(out, 2.0 * np.arange(3.0) + 1.0)


# ---------------------------------------------------------------------------
# several trees, prefixes, mismatches
# ---------------------------------------------------------------------------

def test_tree_map_rest_trees_may_extend_the_first():
    out = tu.tree_map(lambda a, b: (a, b), [1, 2], [(3, 4), {"k": 5}])
    assert out == [(1, (3, 4)), (2, {"k": 5})]


@pytest.mark.parametrize("first, other", [
    ((1, 2), (1, 2, 3)),
    ((1, 2), [1, 2]),
    ({"a": 1}, {"b": 1}),
    ({"a": 1, "b": 2}, {"a": 1}),
    (Point(1, 2), (1, 2)),
    (Pair(1, 2, tag="u"), Pair(1, 2, tag="v")),
    ([1, None], [1, 2]),
    ((1, (2, 3)), (1, 2)),
])
def test_tree_map_structure_mismatch_is_an_error(first, other):
    with pytest.raises(ValueError, match="tree structure mismatch: expected"):
        tu.tree_map(lambda a, b: a, first, other)


def test_unflatten_with_the_wrong_number_of_leaves_is_an_error():
    treedef = tu.tree_structure({"a": (1, 2), "b": None})
    with pytest.raises(ValueError, match="too few leaves"):
        treedef.unflatten([1])
    with pytest.raises(ValueError, match="too many leaves"):
        treedef.unflatten([1, 2, 3])


def test_tree_reduce_all_and_transpose():
    tree = {"a": [1, 2], "b": (3,)}
    assert tu.tree_reduce(lambda a, b: a + b, tree) == 6
    assert tu.tree_reduce(lambda a, b: a + b, tree, 10) == 16
    assert tu.tree_all([True, (1, 2)]) and not tu.tree_all([True, (0, 2)])
    outer, inner = tu.tree_structure([0, 0, 0]), tu.tree_structure((0, 0))
    transposed = tu.tree_transpose(outer, inner, [(1, 2), (3, 4), (5, 6)])
    assert transposed == ([1, 3, 5], [2, 4, 6])


def test_device_put_maps_every_leaf_to_an_array():
    out = fg.device_put({"a": 1.0, "b": [2, (3.0,)]})
    assert all(isinstance(x, np.ndarray) for x in tu.tree_leaves(out))
    assert tu.tree_structure(out) == tu.tree_structure({"a": 1.0, "b": [2, (3.0,)]})
