"""The course notebooks keep their conventions, and run unchanged on real-layout data.

Conventions every ``notebooks/NN_topic`` pair follows (see notebooks/_colab_setup.py):

* the ``.py`` (jupytext percent format, the file to edit) and the ``.ipynb`` (what Colab,
  Binder and GitHub open) hold the same cells, compared by content, never by timestamp;
* the first code cell is the Colab setup, character for character;
* a settings cell sets ``DATA_DIR`` and ``PRESET``: the one place to switch to real data;
* at least one cell is tagged ``nbval-check-output`` (a cell tag, out of the learner's way)
  and was saved with its output, so
  ``pytest --nbval-lax`` really compares something;
* the notebook ends with a Summary, Exercises and References.

The outputs themselves are checked by nbval when pytest collects ``notebooks/*.ipynb``.
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
COLAB_SETUP = (NOTEBOOK_DIR / "_colab_setup.py").read_text().strip()
# The settings cell: these two lines, each starting exactly so (a comment may follow).
SETTINGS_LINES = (
    "DATA_DIR = None  # or a BraTS folder in any layout; env GLISEG_NB_DATA also works",
    'PRESET = "quick"',
)

IPYNB_FILES = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if not p.name.startswith("_"))
PY_FILES = sorted(p for p in NOTEBOOK_DIR.glob("[0-9]*.py"))


def cell_contents(notebook):
    """(type, source) of each cell, the only things the pair must agree on."""
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_course_has_notebooks():
    assert len(IPYNB_FILES) >= 3
    assert [p.stem for p in IPYNB_FILES][:3] == ["00_introduction", "01_modalities", "02_labels"]


def test_every_notebook_has_a_twin():
    assert {p.stem for p in IPYNB_FILES} == {p.stem for p in PY_FILES}


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_pair_has_identical_cells(ipynb):
    script = jupytext.read(ipynb.with_suffix(".py"))
    notebook = nbformat.read(ipynb, as_version=4)
    assert cell_contents(script) == cell_contents(notebook), (
        f"{ipynb.name} and its .py differ: edit the .py, then run "
        f"`jupytext --to ipynb {ipynb.with_suffix('.py').name}` and execute it again"
    )


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_first_code_cell_is_the_colab_setup(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    assert code_cells(notebook)[0].source.strip() == COLAB_SETUP
    # What the learner will be able to do comes before any code.
    assert notebook.cells[0].cell_type == "markdown"
    assert re.search(r"able to", notebook.cells[0].source, re.IGNORECASE)


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_has_the_settings_cell(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    settings = [cell for cell in code_cells(notebook)
                if all(any(line.startswith(start) for line in cell.source.splitlines())
                       for start in SETTINGS_LINES)]
    assert len(settings) == 1, f"{ipynb.name}: one settings cell with {SETTINGS_LINES}"
    # Only settings in it: the learner edits this cell and nothing else.
    assert all(line.startswith(("DATA_DIR", "PRESET", "#")) or not line.strip()
               for line in settings[0].source.splitlines())


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_has_checked_outputs_stored(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    checked = [cell for cell in code_cells(notebook) if "nbval-check-output" in cell.metadata.get("tags", [])]
    assert checked, f"{ipynb.name}: no cell tagged nbval-check-output, so nbval-lax checks nothing"
    # The markers live in cell tags, not in the code a learner reads.
    assert not any("NBVAL" in cell.source for cell in code_cells(notebook)), ipynb.name
    for cell in checked:
        assert cell.outputs, f"{ipynb.name}: a checked cell was saved without its output"
        text = "".join(output.get("text", "") for output in cell.outputs)
        # A progress bar or a log line in a checked cell would make the check flaky.
        assert not any(output.get("name") == "stderr" for output in cell.outputs), text


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_every_code_cell_was_executed_in_order(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    counts = [cell.execution_count for cell in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{ipynb.name}: save it executed top to bottom from a fresh kernel"
    )


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_ends_with_summary_and_exercises(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    headings = [line.lstrip("#").strip().lower()
                for cell in notebook.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("#")]
    assert headings[-3:] == ["summary", "exercises", "references"]
    assert notebook.cells[-1].cell_type == "markdown"


def test_no_errors_or_widget_junk_in_stored_outputs():
    for ipynb in IPYNB_FILES:
        for cell in code_cells(nbformat.read(ipynb, as_version=4)):
            for output in cell.outputs:
                assert output.output_type != "error", f"{ipynb.name} was saved with an error"


def test_notebook_runs_unchanged_on_a_brats_layout_folder(tmp_path, monkeypatch):
    """02_labels, pointed at a BraTS 2020 (Kaggle) folder through GLISEG_NB_DATA, runs."""
    from nbclient import NotebookClient

    from layout_fixtures import write_layout

    data_root = tmp_path / "kaggle"
    write_layout(data_root, "brats2020-kaggle", n_cases=2, shape=(48, 56, 40))
    monkeypatch.setenv("GLISEG_NB_DATA", str(data_root))

    notebook = nbformat.read(NOTEBOOK_DIR / "02_labels.ipynb", as_version=4)
    for cell in code_cells(notebook):
        cell.outputs = []
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    printed = "\n".join(output.get("text", "") for cell in code_cells(notebook)
                        for output in cell.outputs)
    # It really read the fixture (2 cases, Kaggle layout), not the synthetic default.
    assert "2 cases" in printed
    assert "brats2020-kaggle" in printed


def test_binder_installs_the_package_from_the_repository_root():
    """Binder ignores the root pyproject.toml once binder/ exists: postBuild must install it."""
    import os

    binder = NOTEBOOK_DIR.parent / "binder"
    post_build = binder / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    commands = [line.strip() for line in post_build.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[0] == "set -euo pipefail"
    assert any(re.search(r"pip install .*-e \"?\.", line) for line in commands)
    requirements = [line.split("#", 1)[0].strip().lower()
                    for line in (binder / "requirements.txt").read_text().splitlines()]
    # TensorFlow comes with the package's own lower bound; no second, conflicting pin here.
    assert not any(line.startswith("tensorflow") for line in requirements)


def test_binder_prepares_the_model_the_notebooks_load():
    """postBuild trains with `load_or_train()`'s defaults: the settings every notebook starts with."""
    import ast
    import inspect

    from gliseg_nb.course import load_or_train

    post_build = (NOTEBOOK_DIR.parent / "binder" / "postBuild").read_text()
    snippets = [ast.literal_eval(match) for match in re.findall(r'python -c ("[^"\n]*")', post_build)]
    calls = [node for code in snippets for node in ast.walk(ast.parse(code))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_or_train"]
    assert len(calls) == 1 and not calls[0].args, "postBuild should call load_or_train() once, with defaults"
    assert {keyword.arg for keyword in calls[0].keywords} <= {"verbose"}
    defaults = inspect.signature(load_or_train).parameters
    for py in sorted(NOTEBOOK_DIR.glob("0*.py")):
        text = py.read_text()
        assert re.search(r"^DATA_DIR = None\b", text, re.M), py.name
        preset = re.search(r'^PRESET = "(\w+)"', text, re.M).group(1)
        assert (defaults["data_dir"].default, defaults["preset"].default) == (None, preset), py.name


@pytest.mark.parametrize("ipynb", IPYNB_FILES, ids=lambda p: p.stem)
def test_solutions_are_collapsed_and_follow_the_exercises(ipynb):
    """Worked solutions for instructors: tagged ``solution``, collapsed, after the exercises."""
    notebook = nbformat.read(ipynb, as_version=4)

    def heading_of(cell):
        return [line.lstrip("#").strip().lower() for line in cell.source.splitlines()
                if cell.cell_type == "markdown" and line.startswith("#")]

    exercises_at = max((i for i, cell in enumerate(notebook.cells) if "exercises" in heading_of(cell)), default=None)
    references_at = max((i for i, cell in enumerate(notebook.cells) if "references" in heading_of(cell)), default=None)
    for index, cell in enumerate(notebook.cells):
        if "solution" not in cell.metadata.get("tags", []):
            continue
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, (
            f"{ipynb.name} cell {index}: a solution must be collapsed (jupyter.source_hidden)")
        assert exercises_at is not None and references_at is not None
        assert exercises_at < index < references_at, (
            f"{ipynb.name} cell {index}: solutions go between the Exercises and the References")
        assert "nbval-check-output" not in cell.metadata.get("tags", [])


@pytest.mark.parametrize("stem", ["05_metrics", "06_predictions"])
def test_every_exercise_has_a_worked_solution(stem):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4)
    exercises = next(cell.source for cell in notebook.cells
                     if cell.cell_type == "markdown" and "## Exercises" in cell.source)
    numbers = re.findall(r"^(\d+)\. ", exercises.split("## Exercises", 1)[1], flags=re.MULTILINE)
    solved = {int(n) for cell in notebook.cells if "solution" in cell.metadata.get("tags", [])
              for n in re.findall(r"\*\*Solution (\d+)\.\*\*", cell.source)}
    assert numbers and {int(n) for n in numbers} == solved
