"""fungrad.viz: DOT structure of jaxpr pictures, the forward/backward split of a
derivative, rendering with Graphviz when present and the DOT fallback without it."""
import re
import shutil

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn, viz

X, Y = np.ones(5), np.zeros(3)
W = np.random.default_rng(0).standard_normal((5, 3))
B = np.random.default_rng(1).standard_normal(3)


def seed_loss(w, b):
    return nn.binary_cross_entropy_with_logits(fnp.matmul(X, w) + b, Y)


def _nodes(dot):
    return re.findall(r"^\s*(\w+) \[label=\"((?:[^\"\\]|\\.)*)\"", dot, flags=re.M)


def _edges(dot):
    return re.findall(r"^\s*(\w+) -> (\w+)", dot, flags=re.M)


def test_to_dot_has_inputs_equations_outputs_and_edges():
    closed = fg.make_jaxpr(lambda x, y: fnp.sin(x) * y + 1.0)(1.0, 2.0)
    dot = viz.to_dot(closed, arg_names=["x", "y"], out_names=["result"])
    nodes = dict(_nodes(dot))
    assert dot.startswith("digraph jaxpr {") and dot.rstrip().endswith("}")
    assert nodes["nin0"].startswith("x\\na: f64[]") and nodes["nin1"].startswith("y\\nb: f64[]")
    eqn_labels = [label for node, label in nodes.items() if node.startswith("ne")]
    assert len(eqn_labels) == len(closed.eqns) == 3
    assert eqn_labels[0].startswith("sin") and "add(d, 1.0)" in eqn_labels[2]
    assert nodes["nout0"].startswith("result")
    edges = _edges(dot)
    assert ("nin0", "ne0") in edges and ("nin1", "ne1") in edges and ("ne2", "nout0") in edges
    # every edge endpoint is a declared node
    declared = set(nodes)
    assert all(a in declared and b in declared for a, b in edges)


def test_to_dot_shows_params_shapes_and_constants():
    closed = fg.make_jaxpr(lambda w: fnp.sum(fnp.matmul(X, w)))(W)
    dot = viz.to_dot(closed)
    assert "dot_general" in dot and "dimension_numbers" in dot
    assert "f64[5,3]" in dot and "reduce_sum" in dot
    assert "const a: f64[5]" in dot          # the captured x, drawn as a constant


def test_to_dot_accepts_plain_jaxpr_and_rejects_other_things():
    closed = fg.make_jaxpr(fnp.exp)(1.0)
    assert viz.to_dot(closed.jaxpr) == viz.to_dot(closed)
    with pytest.raises(TypeError):
        viz.to_dot("not a jaxpr")


def test_split_colours_forward_and_backward_equations():
    closed = fg.make_jaxpr(fg.grad(lambda x: fnp.sum(fnp.sin(x) ** 2)))(np.ones(3))
    dot = viz.to_dot(closed, split=1)
    fills = re.findall(r"^\s*ne\d+ \[.*fillcolor=\"(#\w+)\"", dot, flags=re.M)
    assert fills[0] == viz._STYLE["forward"]["fill"]
    assert set(fills[1:]) == {viz._STYLE["backward"]["fill"]}
    with pytest.raises(ValueError):
        viz.to_dot(closed, split=99)


def test_seed_loss_gradient_picture_separates_forward_and_backward():
    dot = viz.vjp_to_dot(seed_loss, W, B)
    forward = dot[dot.index("subgraph cluster_forward"):dot.index("subgraph cluster_backward")]
    backward = dot[dot.index("subgraph cluster_backward"):]
    assert "dot_general" in forward and "bce_with_logits" in forward
    assert "gradient of w" in backward and "gradient of b" in backward
    assert "cotangent of output 0" in backward
    # residuals: dashed edges from forward nodes into the backward cluster
    residual_edges = re.findall(r"^\s*(f\w+) -> (b\w+) \[.*style=dashed", dot, flags=re.M)
    assert residual_edges
    nodes = dict(_nodes(dot))
    assert all(a in nodes and b in nodes for a, b in _edges(dot))
    # one node per equation of the forward and backward jaxprs that vjp runs
    fwd, bwd, n_res, _, _ = viz._vjp_parts(seed_loss, (W, B))
    assert len(re.findall(r"^\s*fe\d+ \[", forward, flags=re.M)) == len(fwd.eqns)
    assert len(re.findall(r"^\s*be\d+ \[", backward, flags=re.M)) == len(bwd.eqns)
    assert f"keeps {n_res} residual(s)" in forward


def test_draw_writes_dot_text_for_dot_suffix(tmp_path):
    out = viz.draw(fg.make_jaxpr(fnp.tanh)(0.5), tmp_path / "t.dot")
    assert out == tmp_path / "t.dot" and out.read_text().startswith("digraph")


def test_draw_falls_back_to_dot_text_without_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    out = viz.draw(fg.make_jaxpr(fnp.tanh)(0.5), tmp_path / "pic.svg")
    assert out == tmp_path / "pic.dot" and out.read_text().startswith("digraph")
    assert "Graphviz 'dot' not found" in capsys.readouterr().err
    assert viz.to_svg(fg.make_jaxpr(fnp.tanh)(0.5)) is None


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_rendering_with_graphviz(tmp_path):
    out = viz.draw_vjp(seed_loss, W, B, path=tmp_path / "grad.svg")
    svg = out.read_text()
    assert out.suffix == ".svg" and "<svg" in svg
    assert "forward pass" in svg and "backward pass" in svg and "gradient of w" in svg
    closed = fg.make_jaxpr(seed_loss)(W, B)
    assert "<svg" in closed._repr_svg_()
