"""The module layout: the TensorFlow-free modules import without TensorFlow, and
`gliseg_nb.pipeline` re-exports each name from the module that owns it."""

import subprocess
import sys

import pytest

LIGHT_MODULES = ["gliseg_nb.split", "gliseg_nb.preprocessing", "gliseg_nb.orientation"]


def _heavy_modules_after(code):
    """Run `code` in a fresh interpreter; return which of tensorflow/keras it imported."""
    probe = code + "; import sys; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_module_imports_without_tensorflow(module):
    assert _heavy_modules_after(f"import {module}") == "[]"


def test_splitting_through_the_facade_needs_no_tensorflow():
    # The notebooks' import path: the split and the preprocessing, used for real.
    code = (
        "from gliseg_nb import Config; "
        "from gliseg_nb.pipeline import split_cases, preprocess_case, normalize_intensities; "
        "import numpy as np; "
        "split = split_cases([f'case{i}' for i in range(10)], Config.preset('quick')); "
        "assert sum(len(v) for v in split.values()) == 10; "
        "normalize_intensities(np.ones((4, 4, 2)))"
    )
    assert _heavy_modules_after(code) == "[]"


def test_facade_names_are_the_owners_objects():
    import gliseg_nb.pipeline as pipeline
    from gliseg_nb import dataset, preprocessing, sequence, split

    owners = [preprocessing, split, sequence, dataset]
    for name in pipeline.__all__:
        defining = [module for module in owners if name in module.__all__]
        assert len(defining) == 1, f"{name} should have exactly one owner, found {defining}"
        assert getattr(pipeline, name) is getattr(defining[0], name), name
    # Every public name of the four modules is reachable through the facade.
    assert {n for module in owners for n in module.__all__} == set(pipeline.__all__)


def test_facade_rejects_unknown_names():
    import gliseg_nb.pipeline as pipeline

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pipeline.nonexistent  # noqa: B018
