"""`gliseg-nb tour`: runs tiny notebooks headless, writes pages, names the failing cell."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from gliseg_nb.cli import main
from gliseg_nb.tour import default_notebook_dir, find_notebooks


def write_notebook(path, *sources):
    cells = [new_markdown_cell("# a tiny notebook")] + [new_code_cell(source) for source in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture
def notebook_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_second.ipynb", "print(6 * 7)")
    write_notebook(folder / "00_first.ipynb", "import os\nprint(os.path.basename(os.getcwd()))")
    write_notebook(folder / "_scratch.ipynb", "raise RuntimeError('never run')")
    return folder


def test_finds_course_notebooks_in_order(notebook_dir):
    assert [p.name for p in find_notebooks(notebook_dir)] == ["00_first.ipynb", "01_second.ipynb"]


def test_default_folder_is_the_repository_notebooks():
    assert default_notebook_dir() == Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_tour_writes_executed_notebooks_and_html(notebook_dir, tmp_path, capsys):
    build = tmp_path / "build"
    assert main(["tour", "--out", str(build), "--notebooks", str(notebook_dir)]) == 0
    assert sorted(p.name for p in build.iterdir()) == [
        "00_first.html", "00_first.ipynb", "01_second.html", "01_second.ipynb",
    ]
    executed = nbformat.read(build / "01_second.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    first = nbformat.read(build / "00_first.ipynb", as_version=4)
    # Each notebook runs in its own folder, as in Jupyter.
    assert first.cells[1].outputs[0]["text"] == "notebooks\n"
    assert "42" in (build / "01_second.html").read_text()
    assert "All 2 notebooks ran" in capsys.readouterr().out


@pytest.mark.slow
def test_tour_names_the_failing_notebook_and_cell(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_ok.ipynb", "x = 1")
    write_notebook(folder / "01_broken.ipynb", "y = 2", "raise ValueError('no tumour here')", "z = 3")
    write_notebook(folder / "02_never.ipynb", "w = 4")
    build = tmp_path / "build"
    assert main(["tour", "--out", str(build), "--notebooks", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "01_broken.ipynb, code cell 2" in err
    assert "no tumour here" in err
    # The failed notebook is still written for inspection; the tour stopped after it.
    assert (build / "01_broken.html").exists()
    assert not (build / "02_never.ipynb").exists()


def test_missing_folder_is_one_clear_line(tmp_path, capsys):
    assert main(["tour", "--out", str(tmp_path / "b"), "--notebooks", str(tmp_path / "nope")]) == 2
    assert "no notebook folder here" in capsys.readouterr().err


def test_static_page_shows_the_picture_of_a_widget_and_loads_no_widget_script():
    import base64

    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from gliseg_nb.tour import static_html

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 16).decode()
    widget_view = {"version_major": 2, "version_minor": 0, "model_id": "abc123"}
    notebook = new_notebook(cells=[new_code_cell("viewer", outputs=[new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": widget_view,
                              "image/png": png, "text/plain": "CaseViewer of c"})])])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0, "state": {}}}
    page = static_html(notebook)
    assert f'src="data:image/png;base64,{png}"' in page
    assert "abc123" not in page and "html-manager" not in page
    assert "widgets" in notebook.metadata          # the notebook itself is left as it was


def test_progress_names_each_code_cell_and_the_kernel_does_not_warn(tmp_path, capfd):
    """Inside a long notebook the tour says which cell runs; no "TCP without encryption"."""
    from gliseg_nb.tour import execute_notebook

    path = write_notebook(tmp_path / "00_cells.ipynb", "a = 1", "b = 2", "print(a + b)")
    seen = []
    execute_notebook(path, tmp_path / "build", on_cell=lambda number, total: seen.append((number, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    # The kernel's own log goes to this process's standard error (file descriptor 2).
    assert "without encryption" not in capfd.readouterr().err


def test_a_missing_tour_extra_is_one_line_with_the_install_command(notebook_dir, tmp_path, capsys, monkeypatch):
    import gliseg_nb.tour

    monkeypatch.setattr(gliseg_nb.tour, "_TOUR_MODULES", ("nbformat", "no_such_module_here"))
    assert main(["tour", "--out", str(tmp_path / "b"), "--notebooks", str(notebook_dir)]) == 2
    err = capsys.readouterr().err
    assert "no_such_module_here" in err and 'pip install -e ".[tour]"' in err
    assert len(err.strip().splitlines()) == 1
