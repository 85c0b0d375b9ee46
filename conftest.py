"""Test-session settings shared by the unit tests (tests/) and the notebooks (nbval).

Every pytest session gets its own empty ``GLISEG_NB_CACHE`` (a temporary folder, removed
at the end), so the suite never writes into the user's cache and never depends on whether
that cache is warm. It is set here, in the repository's root conftest, because nbval starts
the notebook kernels with this process's environment (``--nbval-current-env``) and
``pytest notebooks/`` alone does not read ``tests/conftest.py``. The notebooks then build
the synthetic dataset and train the quick model once per session, into this folder.
"""

import os
import shutil
import tempfile

CACHE_ENV_VAR = "GLISEG_NB_CACHE"  # gliseg_nb._io.CACHE_ENV_VAR (not imported: no package import here)


def pytest_configure(config):
    folder = tempfile.mkdtemp(prefix="gliseg-nb-test-cache-")
    config._gliseg_nb_cache = (folder, os.environ.get(CACHE_ENV_VAR))
    os.environ[CACHE_ENV_VAR] = folder


def pytest_unconfigure(config):
    folder, previous = getattr(config, "_gliseg_nb_cache", (None, None))
    if folder is None:
        return
    if previous is None:
        os.environ.pop(CACHE_ENV_VAR, None)
    else:
        os.environ[CACHE_ENV_VAR] = previous
    shutil.rmtree(folder, ignore_errors=True)
