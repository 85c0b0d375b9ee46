"""Installing the course in Colab replaces none of Colab's own packages.

Colab's kernel runs on its preinstalled TensorFlow, Keras, NumPy, ipykernel, IPython,
jupyter-client and ipywidgets (``constraints/colab.txt``). The notebooks' first cell runs
``pip install gliseg-nb``; pip leaves an installed package alone when it satisfies every
requirement, so the whole resolution (our dependencies and theirs) must accept Colab's
versions. Two checks:

* offline: each of our own requirements admits Colab's version;
* with PyPI: ``pip install --dry-run --report`` of the built wheel, for Python 3.12 wheels,
  constrained to Colab's versions, resolves, and picks exactly those versions. This is the
  check that sees the dependencies of our dependencies (nilearn, ipywidgets, ...). It needs
  the network: outside CI it skips when PyPI cannot be reached (and says so); under
  ``CI=true`` it never skips.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "colab.txt"
#: Colab's Python; the dry run asks for wheels of this version.
COLAB_PYTHON = "3.12"


def colab_versions():
    """``{canonical name: SpecifierSet}`` of constraints/colab.txt."""
    versions = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            versions[canonicalize_name(requirement.name)] = requirement.specifier
    return versions


def test_constraints_list_the_packages_colab_must_keep():
    versions = colab_versions()
    kernel = {"tensorflow", "keras", "numpy", "ipykernel", "ipython", "jupyter-client", "ipywidgets"}
    assert kernel <= set(versions)
    # Pins (==), so that the dry run can only pick Colab's version.
    assert all(str(spec).startswith("==") for spec in versions.values())


def _one_version(specifier):
    """A concrete version a ``==X.Y.*`` or ``==X.Y.Z`` specifier admits (X.Y.0 for a wildcard)."""
    text = str(specifier)[2:]
    return text.replace("*", "0")


def test_our_requirements_admit_colabs_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    versions = colab_versions()
    checked = []
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name in versions:
            version = _one_version(versions[name])
            assert requirement.specifier.contains(version, prereleases=True), (
                f"pyproject.toml requires {line!r}: Colab's {name} {version} would be replaced"
            )
            checked.append(name)
    assert {"tensorflow", "keras", "numpy", "ipywidgets"} <= set(checked)
    # The tour's kernel machinery is an extra, not a base requirement Colab would have to meet.
    base = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    assert not base & {"ipykernel", "jupyter-client", "ipython", "nbclient"}


def test_the_colab_setup_cell_installs_the_base_package_only():
    cell = (ROOT / "notebooks" / "_colab_setup.py").read_text()
    install = [line for line in cell.splitlines() if "pip install" in line]
    assert len(install) == 1
    # No extra ([tour], [lab], [test]): those need a newer kernel than Colab's.
    assert '"gliseg-nb @ git+https://github.com/gliseg-nb/gliseg-nb"' in install[0]
    assert "--upgrade" not in install[0] and " -U " not in install[0]


def _pypi_reachable():
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.network
def test_pip_install_in_colab_changes_none_of_its_packages(tmp_path):
    if not _pypi_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but https://pypi.org cannot be reached: this check must run in CI")
        pytest.skip("needs https://pypi.org (not reachable here); runs in CI, where it must pass")

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # What Colab installs from git is this package's wheel: build it (no dependencies).
    built = subprocess.run([*pip, "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("gliseg_nb-*.whl")

    # --python-version needs wheels only and (pip < 24) --target; --dry-run writes nothing there.
    result = subprocess.run(
        [*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
         "--target", str(tmp_path / "target"), "--python-version", COLAB_PYTHON, "--only-binary=:all:",
         "-c", str(CONSTRAINTS), str(wheel)],
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, (
        f"pip cannot install gliseg-nb next to Colab's packages ({CONSTRAINTS.name}):\n{result.stderr[-3000:]}"
    )
    report = json.loads(result.stdout)
    chosen = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    assert "gliseg-nb" in chosen
    for name, specifier in colab_versions().items():
        if name in chosen:
            assert specifier.contains(chosen[name], prereleases=True), (
                f"installing gliseg-nb would change Colab's {name} to {chosen[name]} (Colab: {specifier})"
            )
    # The packages the kernel runs on are all pulled in, so the check above really saw them.
    assert {"tensorflow", "keras", "numpy", "ipywidgets", "ipykernel", "ipython", "jupyter-client"} <= set(chosen)
