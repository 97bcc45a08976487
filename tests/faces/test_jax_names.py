"""The public names of jax.numpy, jax.nn, jax.lax, jax.scipy.special and
jax.scipy.linalg (dumped from JAX into tests/data/jax_public_names.json) against
fungrad's.  Every JAX name fungrad lacks is listed, with its reason, in
tests/data/jax_names_absent.json, so the gap is visible and can only shrink: a
listed name that fungrad now has fails this test until it is removed from the list."""
import importlib
import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
JAX_NAMES = json.loads((DATA / "jax_public_names.json").read_text())
ABSENT = json.loads((DATA / "jax_names_absent.json").read_text())
CATEGORIES = {"primitive-object", "dtype", "multi-device", "xla-specific", "io", "not-yet"}
MODULES = [k for k in JAX_NAMES if k != "jax_version"]


def _fungrad_module(name):
    try:
        return importlib.import_module(f"fungrad.{name}")
    except ImportError:
        return None


@pytest.mark.parametrize("module", MODULES)
def test_every_missing_jax_name_is_listed_with_a_reason(module):
    fungrad_module = _fungrad_module(module)
    missing = {n for n in JAX_NAMES[module]
               if fungrad_module is None or not hasattr(fungrad_module, n)}
    listed = {n for names in ABSENT[module].values() for n in names}
    assert set(ABSENT[module]) <= CATEGORIES
    unlisted = sorted(missing - listed)
    now_present = sorted(listed - missing)
    assert not unlisted, (f"fungrad.{module} lacks JAX names not listed in "
                          f"tests/data/jax_names_absent.json: {unlisted}")
    assert not now_present, (f"fungrad.{module} now has {now_present}: remove them from "
                             "tests/data/jax_names_absent.json")


def test_the_names_added_for_ports_are_present():
    import fungrad as fg
    for name in ("tanh", "standardize", "selu", "celu", "glu", "hard_tanh", "soft_sign"):
        assert hasattr(fg.nn, name)
    for name in ("eval_shape", "ShapeDtypeStruct", "pure_callback", "device_get", "tree",
                 "flatten_util", "debug", "hvp", "block_until_ready"):
        assert hasattr(fg, name)
