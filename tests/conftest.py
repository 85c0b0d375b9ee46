"""Shared test fixtures: a seeded random generator, a non-interactive matplotlib, and a
small synthetic dataset written once per test session.

The session's private, empty ``GLISEG_NB_CACHE`` is set by the repository's root
``conftest.py`` (it applies to the notebooks too).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded random generator: tests are repeatable."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """Three synthetic BraTS 2020-layout cases (seed 0), written once per test session.

    Case 001 is low-grade-like (a non-enhancing core), 002 a solid high-grade tumour, 003 a
    necrotic high-grade one (with thick slices).
    Takes a few seconds per case: tests that use it are marked ``slow``.
    """
    from gliseg_nb.data import synthesize

    root = tmp_path_factory.mktemp("synthetic")
    synthesize(root, n_cases=3, seed=0, progress=False)
    return root
