"""The viewers on ipywidgets 7.7 (Colab's version) in a real browser: the classic Notebook.

Colab runs ipywidgets 7.7.1 with a front end of its own, which cannot be reached from a test.
JupyterLab 4 cannot host ipywidgets 7 either (its widget manager, jupyterlab_widgets 3, speaks
the ipywidgets 8 protocol). What ipywidgets 7.7 users run outside Colab is the classic
Notebook 6.5 with widgetsnbextension 3.6, so that is what this module starts: a virtual
environment of its own (not this one, whose ipywidgets is 8) with Colab's ipywidgets, the
Notebook 6.5, ipyevents and the few packages the viewers import; the kernel imports this
checkout's gliseg_nb. Then, as in tests/test_browser.py: open a notebook showing a
`CaseViewer`, a `ComparisonViewer` and a `view_3d`, move each control, see the pictures
change, with no JavaScript error.

Building the environment takes about a minute (pip, from PyPI). Set
``GLISEG_NB_WIDGETS7_PYTHON`` to the python of such an environment to reuse it. Outside CI
the tests skip, and say why, when Chromium is absent or PyPI cannot be reached; under CI
(``CI=true``) they fail instead.
"""

import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from test_browser import (CHROMIUM, CHROMIUM_ARGS, REPO, _free_port, _kernel_pythonpath, _need_browser,
                          jupyter_server, slider_step_latencies)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.network]

SHAPE = (48, 56, 32)
WIDTH = 600
CONSTRAINTS = REPO / "constraints" / "colab.txt"
#: The classic Notebook and its widget extension for ipywidgets 7, ipyevents, and what the
#: viewers import (nibabel for the orientation, matplotlib for the PNG sent with each view),
#: and ipyniivue for `view_3d`. ipywidgets itself is pinned by constraints/colab.txt.
PACKAGES = ["ipywidgets", "widgetsnbextension>=3.6,<4", "notebook>=6.5,<7", "ipyevents>=2.0",
            "numpy", "nibabel", "matplotlib", "pillow", "ipyniivue>=2.0"]
OUTPUT = ".output_area"     # the classic Notebook's output area (JupyterLab: .jp-OutputArea-output)


def _in_ci():
    return os.environ.get("CI", "").lower() == "true"


def _colab_ipywidgets():
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name.lower() == "ipywidgets":
            return str(Requirement(line).specifier)[2:]
    raise AssertionError(f"{CONSTRAINTS} names no ipywidgets version")


def _build_environment(folder):
    """A fresh venv with the classic Notebook and Colab's ipywidgets; returns its python."""
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
    except OSError:
        message = "https://pypi.org cannot be reached: the ipywidgets 7 environment was not built"
        if _in_ci():
            pytest.fail(message + " (CI=true: this check must run)")
        pytest.skip(message + "; set GLISEG_NB_WIDGETS7_PYTHON to an existing one")
    # No pip inside (ensurepip alone takes ~10 s): this interpreter's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=120)
    python = folder / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", "--no-compile", "-c", str(CONSTRAINTS), *PACKAGES],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"pip could not build the ipywidgets 7 environment:\n{result.stderr[-3000:]}"
    return python


@pytest.fixture(scope="module")
def widgets7_python(tmp_path_factory):
    _need_browser()
    given = os.environ.get("GLISEG_NB_WIDGETS7_PYTHON")
    python = Path(given) if given else _build_environment(tmp_path_factory.mktemp("widgets7") / "venv")
    version = subprocess.run([str(python), "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    assert version == _colab_ipywidgets(), f"{python} has ipywidgets {version!r}, not Colab's"
    # ipyevents' wheel enables its classic-Notebook extension but does not install the files
    # (the page then 404s and the events never arrive): install them, as its docs say.
    subprocess.run([str(python.parent / "jupyter-nbextension"), "install", "--py", "--sys-prefix",
                    "--overwrite", "ipyevents"], check=True, capture_output=True, timeout=120)
    return python


def _write_notebook(root, case_file):
    """Both viewers on a case saved as arrays (gliseg_nb.data needs nilearn, not installed there)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    setup = (
        "import types\nimport numpy as np\nimport ipywidgets\n"
        "from gliseg_nb.viewers import CaseViewer, ComparisonViewer\n"
        f"saved = np.load({str(case_file)!r})\n"
        "case = types.SimpleNamespace(\n"
        "    images={m: saved[m] for m in ('flair', 't1', 't1ce', 't2')}, labels=saved['labels'],\n"
        "    affine=saved['affine'], zooms=tuple(saved['zooms']), slices=slice(None), case=None)\n"
        "print('ipywidgets', ipywidgets.__version__)"
    )
    viewer = f"viewer = CaseViewer(case, width={WIDTH})\nviewer"
    # A prediction that differs from the truth: the labels moved two voxels along x.
    comparison = (f"comparison = ComparisonViewer(case, prediction=np.roll(saved['labels'], 2, axis=0),"
                  f" width={WIDTH})\ncomparison")
    view = "from gliseg_nb.viewers import view_3d\nview_3d(case)"
    notebook = new_notebook(cells=[new_code_cell(setup), new_code_cell(viewer), new_code_cell(comparison),
                                   new_code_cell(view)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = root / "viewer7.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def classic(widgets7_python, tmp_path_factory):
    """A classic Notebook server in the ipywidgets 7 environment; stopped at the end."""
    import numpy as np
    from layout_fixtures import write_layout

    from gliseg_nb.data import find_cases, load_case

    base = tmp_path_factory.mktemp("classic")
    root = base / "root"
    root.mkdir()
    write_layout(base / "data", "brats2021", n_cases=1, shape=SHAPE)
    case = load_case(find_cases(base / "data")[0])
    np.savez(base / "case.npz", labels=case.labels, affine=case.affine, zooms=case.zooms[:3],
             **case.images)
    notebook = _write_notebook(root, base / "case.npz")
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data_dir"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
        GLISEG_NB_CACHE=str(base / "cache"),
        MPLBACKEND="Agg",
        PYTHONPATH=_kernel_pythonpath(),
    )
    argv = [str(widgets7_python), "-m", "notebook", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--port-retries=0", f"--NotebookApp.token={token}",
            f"--notebook-dir={root}", "--allow-root"]
    with jupyter_server(argv, env, port, token, base / "notebook.log", "the Notebook") as url:
        yield {"url": url, "token": token, "notebook": notebook, "base": base}


@pytest.fixture(scope="module")
def page7(classic):
    """The notebook open in the classic Notebook and run; JavaScript errors collected."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(classic["base"] / "chromium-profile"), executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 1400},
        )
        page = context.new_page()
        errors, warnings = [], []

        def on_console(message):
            if message.type == "error":
                errors.append(f"console: {message.text}")
            elif message.type == "warning":
                warnings.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.goto(f"{classic['url']}/notebooks/{classic['notebook'].name}?token={classic['token']}")
        page.wait_for_function(
            "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
            " && Jupyter.notebook.kernel.is_connected() && Jupyter.notebook.kernel.widget_manager",
            timeout=60_000)
        # The widget manager first asks the kernel for the widgets it already has; a widget
        # displayed before that answer is in stays blank (ipywidgets 7.7's front end). A
        # person takes longer than that to reach the first cell: wait for the answer (its
        # "fallback" warning, since the fresh kernel has not imported ipywidgets yet).
        deadline = time.monotonic() + 30
        while not any("jupyter.widget.control" in text for text in warnings):
            assert time.monotonic() < deadline, f"the widget manager never asked the kernel: {warnings}"
            page.wait_for_timeout(100)
        page.wait_for_timeout(1000)
        page.evaluate("Jupyter.notebook.execute_all_cells()")
        # Three pictures in the CaseViewer, two in the ComparisonViewer.
        try:
            page.locator(f"{OUTPUT} img.widget-image").nth(4).wait_for(timeout=60_000)
        except Exception:
            outputs = page.evaluate(f"() => [...document.querySelectorAll('{OUTPUT}')].map("
                                    "area => area.innerText.slice(0, 2000))")
            pytest.fail(f"the viewers did not show; outputs: {outputs}; JavaScript errors: {errors}")
        page.evaluate(f"""() => {{
            window.srcChanges = [];
            document.querySelectorAll('{OUTPUT} img.widget-image').forEach((img, i) =>
                new MutationObserver(() => window.srcChanges.push({{i, t: performance.now()}}))
                    .observe(img, {{attributes: true, attributeFilter: ['src']}}));
        }}""")
        page.errors = errors
        try:
            yield page
        finally:
            context.close()


def _viewer(page, index):
    """The output area of viewer `index` (0: the CaseViewer, 1: the ComparisonViewer)."""
    return page.locator(f"{OUTPUT}:has(img.widget-image)").nth(index)


def _pictures(viewer):
    return viewer.evaluate("""async (area) => Promise.all(
        [...area.querySelectorAll('img.widget-image')].map(async img => {
            const buffer = await (await fetch(img.src)).arrayBuffer();
            return btoa(String.fromCharCode(...new Uint8Array(buffer)));
        }))""")


def _readout(viewer):
    return viewer.locator("code").first.inner_text()


def _control(viewer, kind, description):
    return viewer.locator(f".widget-{kind}").filter(
        has=viewer.page.locator("label", has_text=re.compile(f"^{description}$")))


def _wait(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def _wait_for_change(viewer, before):
    """Wait until every picture of `viewer` differs from `before`; returns them."""
    return _wait(lambda: (lambda now: now if all(a != b for a, b in zip(now, before)) else None)(
        _pictures(viewer)), "the pictures did not all change")


def _framed(viewer):
    """Index of the picture framed as current (-1: none)."""
    return viewer.evaluate("""(area) => [...area.querySelectorAll('img.widget-image')].findIndex(
        img => getComputedStyle(img.parentElement).borderTopColor === 'rgb(0, 204, 255)')""")


def test_the_kernel_runs_colabs_ipywidgets(page7):
    assert f"ipywidgets {_colab_ipywidgets()}" in page7.locator(f"{OUTPUT} pre").first.inner_text()
    # The classic Notebook's widget extension for ipywidgets 7 is the one in the page.
    assert page7.evaluate("() => !!document.querySelector("
                          "'script[src*=\"jupyter-js-widgets/extension\"]')")
    # ipyevents' files are installed (the fixture did it): the viewer's help does not ask for them.
    help_text = _viewer(page7, 0).locator(".widget-html").last.inner_text()
    assert help_text.startswith("Click a picture") and "nbextension" not in help_text


def test_case_viewer_slider_dropdowns_checkbox_click_and_keys(page7):
    viewer = _viewer(page7, 0)
    pictures = _pictures(viewer)
    assert len(pictures) == 3

    # The slice slider (jQuery UI's in ipywidgets 7): a drag changes the pictures.
    handle = _control(viewer, "slider", "slice").locator(".ui-slider-handle")
    box = handle.bounding_box()
    page7.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page7.mouse.down()
    for step in range(1, 6):
        page7.mouse.move(box["x"] + box["width"] / 2 - 12 * step, box["y"] + box["height"] / 2)
        page7.wait_for_timeout(100)
    page7.mouse.up()
    pictures = _wait_for_change(viewer, pictures)

    _control(viewer, "dropdown", "modality").locator("select").select_option("t1")
    pictures = _wait_for_change(viewer, pictures)

    _control(viewer, "dropdown", "plane").locator("select").select_option("coronal")
    _wait(lambda: _framed(viewer) == 1, "the coronal picture was not framed")

    viewer.locator(".widget-checkbox input").click()
    pictures = _wait_for_change(viewer, pictures)

    # A click on the top-left corner of the sagittal picture: y = 0, z = top (stored LPS,
    # so in the file j = Y - 1), as in tests/test_browser.py.
    readout = _readout(viewer)
    viewer.locator("img.widget-image").nth(2).click(position={"x": 1, "y": 1})
    pictures = _wait_for_change(viewer, pictures)
    readout = _wait(lambda: (lambda now: now if now != readout else None)(_readout(viewer)),
                    "the readout did not change after a click")
    assert re.search(rf"\(\d+, {SHAPE[1] - 1}, {SHAPE[2] - 1}\)", readout), readout

    # A key press with the mouse over the axial picture steps the axial slice.
    viewer.locator("img.widget-image").nth(0).hover()
    page7.keyboard.press("ArrowDown")
    pictures = _wait_for_change(viewer, pictures)
    readout = _wait(lambda: (lambda now: now if now != readout else None)(_readout(viewer)),
                    "the readout did not change after a key press")
    assert re.search(rf"\(\d+, {SHAPE[1] - 1}, {SHAPE[2] - 2}\)", readout), readout
    assert _framed(viewer) == 0


def test_comparison_viewer_slider_and_click(page7):
    viewer = _viewer(page7, 1)
    pictures = _pictures(viewer)
    assert len(pictures) == 2 and pictures[0] != pictures[1]   # truth and prediction differ
    # Keys go to the picture under the mouse, if any (ipyevents): move it off the pictures.
    page7.mouse.move(1, 1)
    _control(viewer, "slider", "slice").locator(".ui-slider-handle").focus()
    page7.keyboard.press("ArrowRight")
    pictures = _wait_for_change(viewer, pictures)
    readout = _readout(viewer)
    viewer.locator("img.widget-image").nth(1).click(position={"x": 2, "y": 2})
    pictures = _wait_for_change(viewer, pictures)
    _wait(lambda: _readout(viewer) != readout, "the readout did not change after a click")


def test_view_3d_draws_the_case_with_its_labels(page7):
    """NiiVue (ipyniivue, an anywidget) draws in WebGL: its canvas shows the image and labels."""
    import io

    import numpy as np
    from PIL import Image

    canvas = page7.locator(f"{OUTPUT} canvas").first
    canvas.wait_for(timeout=30_000)

    def labelled():
        pixels = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=int)
        grey = (np.ptp(pixels, axis=-1) < 8) & (pixels[..., 0] > 40)      # the image
        # Green is the oedema's colour only (NiiVue's crosshair is red).
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        oedema = (green > red + 40) & (green > blue + 40)
        return grey.mean() > 0.1 and oedema.mean() > 0.001

    _wait(labelled, "the NiiVue canvas shows no image with labels", timeout=30)


def test_slider_latency_from_key_to_new_picture(page7, record_property):
    """As in tests/test_browser.py: arrow key on the focused slider -> the new picture."""
    viewer = _viewer(page7, 0)
    page7.mouse.move(1, 1)
    _control(viewer, "slider", "slice").locator(".ui-slider-handle").focus()
    latencies = slider_step_latencies(page7)
    median = statistics.median(latencies)
    record_property("viewer_latency_ms_median_widgets7", round(median))
    record_property("viewer_latency_ms_all_widgets7", " ".join(f"{x:.0f}" for x in latencies))
    print(f"ipywidgets 7: slider step -> new picture: median {median:.0f} ms, max {max(latencies):.0f} ms")
    assert median < 2000, f"a slider step takes {median:.0f} ms to redraw"


def test_no_javascript_error_was_logged(page7):
    # Last in the module: every step above ran in this page.
    assert page7.errors == []
