"""Run the whole course headless: every notebook, in order, to executed notebooks and HTML.

``gliseg-nb tour --out build`` is what an instructor runs before class (and what CI runs) to
see that every notebook works from a fresh kernel and to get pages that open in any browser.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._io import output_folder, user_path
from .errors import DataError, GlisegError

__all__ = [
    "TourError",
    "default_notebook_dir",
    "find_notebooks",
    "execute_notebook",
    "static_html",
    "run_tour",
]


class TourError(GlisegError, RuntimeError):
    """A notebook of the tour failed; the message names the notebook and the cell."""


def default_notebook_dir():
    """The ``notebooks/`` folder of the repository checkout the package is installed from.

    The course notebooks are not part of the installed package: they live next to it in the
    repository (``pip install -e .`` from a clone, as Binder and the README do).

    Returns
    -------
    pathlib.Path
    """
    import gliseg_nb

    return Path(gliseg_nb.__file__).resolve().parents[1] / "notebooks"


def find_notebooks(notebook_dir):
    """The course notebooks in `notebook_dir`, in course order (by file name).

    Checkpoint copies and files starting with ``_`` or ``.`` are skipped.

    Parameters
    ----------
    notebook_dir : str or pathlib.Path
        Folder holding ``NN_topic.ipynb`` files.

    Returns
    -------
    list of pathlib.Path
    """
    notebook_dir = user_path(notebook_dir)
    if not notebook_dir.is_dir():
        raise DataError(
            f"{notebook_dir}: no notebook folder here; pass --notebooks DIR (the repository's "
            "notebooks/ folder)"
        )
    notebooks = sorted(
        path for path in notebook_dir.glob("*.ipynb") if not path.name.startswith(("_", "."))
    )
    if not notebooks:
        raise DataError(f"{notebook_dir}: no .ipynb notebooks found")
    return notebooks


#: What `gliseg-nb tour` needs beyond the base install (the ``tour`` extra).
_TOUR_MODULES = ("nbformat", "nbclient", "nbconvert", "ipykernel")


def _check_tour_installed():
    """Raise a one-line `ConfigError` naming the missing modules and the install command."""
    import importlib.util

    from .errors import ConfigError

    missing = [name for name in _TOUR_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the tour needs {', '.join(missing)}, which the base install leaves out: "
            "pip install \"gliseg-nb[tour]\" (from a clone: pip install -e \".[tour]\")"
        )


def _kernel_config():
    """Kernel manager settings: CurveZMQ encryption when the kernel and pyzmq support it.

    ipykernel 7 warns at every start that it runs "over TCP without encryption" (once per
    notebook, through the tour's progress bar). jupyter-client 8.7+ can give the kernel
    CurveZMQ keys when its kernelspec declares support (ipykernel's does): that removes
    the cause, not just the message. Older jupyter-clients ignore the unknown setting, and
    older kernels do not warn.
    """
    from traitlets.config import Config

    config = Config()
    try:
        import zmq

        if zmq.has("curve"):
            config.KernelManager.transport_encryption = "auto"
    except ImportError:  # pragma: no cover - pyzmq comes with jupyter-client
        pass
    return config


def execute_notebook(path, out_dir, timeout=600, kernel_name="python3", on_cell=None):
    """Execute one notebook in a fresh kernel; write the executed copy and an HTML page.

    The notebook runs with its own folder as working directory, as it would in Jupyter.

    Parameters
    ----------
    path : str or pathlib.Path
        The notebook.
    out_dir : str or pathlib.Path
        Build folder; ``<name>.ipynb`` and ``<name>.html`` are written there.
    timeout : int, default=600
        Seconds any one cell may run.
    kernel_name : str, default="python3"
        Jupyter kernel to start.
    on_cell : callable, optional
        Called as ``on_cell(number, total)`` before each code cell runs (1-based, among
        code cells), to show progress inside a long notebook. Default=None.

    Returns
    -------
    float
        Seconds the notebook took.

    Raises
    ------
    TourError
        If a cell raises or times out; names the notebook, the cell number and the error.
        The partly executed notebook and its HTML are still written, for inspection.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(path, as_version=4)
    code_indices = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]

    def cell_started(cell=None, cell_index=None, **_):
        if on_cell is not None and cell_index in code_indices:
            on_cell(code_indices.index(cell_index) + 1, len(code_indices))

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=cell_started,
        config=_kernel_config(),
    )
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        # DeadKernelError: the kernel died (out of memory, a crash in compiled code).
        failure = error
    elapsed = time.perf_counter() - start
    _write_outputs(notebook, out_dir / path.name)
    if failure is not None:
        cell_number = _failed_cell_number(notebook)
        where = f"code cell {cell_number}" if cell_number is not None else "a cell"
        summary = str(failure).strip().splitlines()
        last_line = summary[-1] if summary else type(failure).__name__
        raise TourError(f"{path.name}, {where}: {last_line}") from failure
    return elapsed


def _failed_cell_number(notebook):
    """1-based number (among code cells) of the cell whose output holds an error."""
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells, start=1):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return number
    # A timeout leaves no error output: the first code cell that never finished.
    for number, cell in enumerate(code_cells, start=1):
        if cell.get("execution_count") is None:
            return number
    return None


def _write_outputs(notebook, ipynb_path):
    import nbformat

    nbformat.write(notebook, ipynb_path)
    ipynb_path.with_suffix(".html").write_text(static_html(notebook), encoding="utf-8")


def static_html(notebook):
    """An HTML page of an executed notebook that needs no script and no network.

    A widget on such a page would be dead controls at best (they need a kernel), and an
    empty box offline (the widget manager comes from a CDN). So every output that also
    carries a picture shows the picture (the course's viewers send a PNG of their current
    view with their widget), and the page loads no widget scripts. Other outputs keep
    nbconvert's order of preference.

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        The executed notebook; it is not modified.

    Returns
    -------
    str
        The HTML page.
    """
    import copy

    from nbconvert import HTMLExporter
    from traitlets.config import Config

    # nbconvert's own order, with the widget view moved from first to last but text: any
    # picture or HTML that comes with a widget wins, and the text is the last resort.
    widget_view = "application/vnd.jupyter.widget-view+json"
    priority = [m for m in HTMLExporter().config.NbConvertBase.display_data_priority
                if m != widget_view]
    at = priority.index("text/plain") if "text/plain" in priority else len(priority)
    config = Config()
    config.NbConvertBase.display_data_priority = priority[:at] + [widget_view] + priority[at:]
    exporter = HTMLExporter(config=config)
    page = copy.deepcopy(notebook)
    # Without widget state in the metadata, nbconvert adds no widget-manager script.
    page.metadata.pop("widgets", None)
    body, _ = exporter.from_notebook_node(page)
    return body


def run_tour(out="tour", *, notebooks=None, timeout=600, keep_going=False):
    """Execute every notebook in order and write executed notebooks and HTML pages.

    Parameters
    ----------
    out : str or pathlib.Path, default="tour"
        Build folder (``~`` expanded; created if missing).
    notebooks : str or pathlib.Path or None, default=None
        Folder of notebooks; None: `default_notebook_dir`.
    timeout : int, default=600
        Seconds any one cell may run; at least 1.
    keep_going : bool, default=False
        Run the remaining notebooks after a failure.

    Returns
    -------
    int
        0 when every notebook ran, 1 otherwise (the failures are printed to stderr).
    """
    from ._progress_bar import progress_bar

    from .errors import ConfigError

    _check_tour_installed()
    if timeout is None or timeout < 1:
        raise ConfigError(f"timeout must be at least 1 second, got {timeout}")
    notebooks = find_notebooks(notebooks or default_notebook_dir())
    out_dir = output_folder(out, what="build folder")

    failures = []
    timings = []
    progress = progress_bar(notebooks, desc="tour", unit="notebook")
    for path in progress:
        progress.set_postfix_str(path.name)

        def show_cell(number, total, name=path.name):
            # Notebooks 00 and 04 run for minutes: say which cell, not only which notebook.
            progress.set_postfix_str(f"{name} cell {number}/{total}")

        try:
            timings.append((path.name, execute_notebook(path, out_dir, timeout=timeout, on_cell=show_cell)))
        except TourError as error:
            failures.append(str(error))
            progress.write(f"FAILED {error}", file=sys.stderr)
            if not keep_going:
                break
    progress.close()

    for name, seconds in timings:
        print(f"{name:40s} {seconds:6.1f} s  -> {out_dir / Path(name).with_suffix('.html').name}")
    if failures:
        print(f"gliseg-nb tour: {len(failures)} notebook(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"All {len(timings)} notebooks ran; pages in {out_dir}/")
    return 0


def add_arguments(parser):
    """The ``tour`` subcommand's options (used by `gliseg_nb.cli`)."""
    parser.add_argument("--out", type=Path, default=Path("tour"), help="build folder (default: tour)")
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="folder of notebooks (default: notebooks/ of the repository checkout)")
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds any one cell may run (default: 600)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the remaining notebooks after a failure")


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="python -m gliseg_nb.tour")
    add_arguments(parser)
    options = parser.parse_args()
    sys.exit(run_tour(options.out, notebooks=options.notebooks, timeout=options.timeout,
                      keep_going=options.keep_going))
