"""The package's metadata agrees with itself: pyproject, environment.yml, README, CI."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name_and_bound(requirement):
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    name = match.group(1).lower().replace("_", "-")
    return name, match.group(2).replace(" ", "")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_requirements():
    """Requirement strings of environment.yml (conda and pip sections), without a YAML parser."""
    requirements = []
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped.startswith("- "):
            continue
        item = stripped[2:].strip()
        if item in ("pip", "pip:", "conda-forge") or item.startswith("-e") or item.startswith("python"):
            continue
        requirements.append(item)
    return requirements


def test_runtime_dependencies_have_lower_bounds_only():
    for requirement in _pyproject()["project"]["dependencies"]:
        name, bound = _requirement_name_and_bound(requirement)
        assert bound.startswith(">="), f"{name}: give a lower bound, not {bound!r}"
        assert "<" not in bound and "==" not in bound, f"{name}: no upper bounds or pins ({bound})"


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = _pyproject()["project"]
    wanted = dict(
        _requirement_name_and_bound(r)
        for r in project["dependencies"] + project["optional-dependencies"]["test"]
        if ";" not in r  # environment markers (tomli on Python 3.10) are pip-only
    )
    listed = dict(_requirement_name_and_bound(r) for r in _environment_requirements())
    missing = sorted(set(wanted) - set(listed))
    assert not missing, f"environment.yml lacks {missing}"
    different = {n: (wanted[n], listed[n]) for n in wanted if wanted[n] != listed[n]}
    assert not different, f"bounds differ between pyproject.toml and environment.yml: {different}"


def test_tensorflow_bound_accepts_colab():
    deps = dict(_requirement_name_and_bound(r) for r in _pyproject()["project"]["dependencies"])
    assert deps["tensorflow"] == ">=2.16"
    assert deps["keras"].startswith(">=3")


def _readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", readme, flags=re.S)
    return readme, blocks


def test_ci_runs_the_readme_test_command():
    # The README's one command installs, then `pytest` runs both testpaths; CI runs the same
    # install, then the same two testpaths as two steps (unit tests, then the notebooks).
    readme, blocks = _readme_commands()
    test_blocks = [b for b in blocks if "pytest" in b and "pip install" in b]
    assert test_blocks, "README must show one command that installs and runs the tests"
    command = test_blocks[0].strip().splitlines()[-1].strip()
    install, _, run = command.rpartition(" && ")
    assert run == "pytest", f"the README's command should end with a plain `pytest`: {command!r}"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci_lines, f"CI does not install as the README does ({install!r})"
    testpaths = _pyproject()["tool"]["pytest"]["ini_options"]["testpaths"]
    steps = [line.split("||")[0].strip() for line in ci_lines if line.startswith("pytest")]
    assert steps == [f"pytest {path}" for path in testpaths]


def test_readme_main_command_runs_the_tour():
    _, blocks = _readme_commands()
    assert any("gliseg-nb tour" in b and "pip install" in b for b in blocks)


def test_every_subcommand_has_help():
    from gliseg_nb.cli import build_parser

    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert {"synth", "cases", "show", "train", "predict", "evaluate", "tour"} <= set(subcommands)
    for name in subcommands:
        result = subprocess.run(
            [sys.executable, "-m", "gliseg_nb", name, "--help"],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: gliseg-nb {name}" in result.stdout


def test_import_is_light():
    """`import gliseg_nb` (and its data layer) must not pull in TensorFlow."""
    code = "import sys, gliseg_nb, gliseg_nb.data, gliseg_nb.labels; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["report", "quick"])
def test_presets_round_trip_through_json(tmp_path, name):
    from gliseg_nb import Config

    config = Config.preset(name)
    path = config.save(tmp_path / "config.json")
    assert Config.load(path) == config


def _extra_requirements(extra, project=None):
    """Names required by an extra, following self-references such as ``gliseg-nb[tour]``."""
    project = project or _pyproject()["project"]
    names = set()
    for requirement in project["optional-dependencies"][extra]:
        name, _ = _requirement_name_and_bound(requirement.split(";")[0])
        match = re.match(r"gliseg-nb\[([\w,\-]+)\]", requirement.replace(" ", ""))
        if match:
            for inner in match.group(1).split(","):
                names |= _extra_requirements(inner, project)
        else:
            names.add(name)
    return names


def _readme_install_extra(marker):
    _, blocks = _readme_commands()
    commands = [b for b in blocks if marker in b and "pip install" in b]
    assert commands, f"README has no command with {marker!r}"
    match = re.search(r'pip install -e "\.\[([\w,\-]+)\]"', commands[0])
    assert match, f"the README's {marker!r} command installs no extra: {commands[0]!r}"
    return match.group(1)


def test_readme_opens_the_course_in_jupyterlab_with_jupytext():
    extra = _readme_install_extra("jupyter lab notebooks/")
    assert {"jupyterlab", "jupytext"} <= _extra_requirements(extra)


def test_readme_tour_command_installs_what_the_tour_imports():
    from gliseg_nb.tour import _TOUR_MODULES

    extra = _readme_install_extra("gliseg-nb tour")
    assert set(_TOUR_MODULES) <= _extra_requirements(extra)
    # The test extra runs the notebooks too (nbval, the tour's tests).
    assert set(_TOUR_MODULES) <= _extra_requirements("test")
