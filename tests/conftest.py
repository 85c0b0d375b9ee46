"""Shared test fixtures: a seeded random generator, a non-interactive matplotlib, and a
small synthetic dataset written once per test session."""

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
