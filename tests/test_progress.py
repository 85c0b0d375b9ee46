"""Training output a learner can read: a compact line, plain in a file, no TensorFlow logs."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gliseg_nb._progress import TrainingProgress, format_logs, progress_mode

TESTS_DIR = Path(__file__).parent
ANSI = re.compile(r"\x1b\[")
TF_LOG_MARKERS = ("E0000", "I0000", "W0000", "oneDNN", "cuInit", "absl::InitializeLog")

LOGS = {"loss": 0.4821, "dice_wt": 0.8123, "dice_tc": 0.7012, "dice_et": 0.6551, "dice_mean": 0.5,
        "accuracy": 0.99, "val_loss": 0.51, "val_dice_wt": 0.804, "val_dice_tc": 0.69, "val_dice_et": 0.66,
        **{f"val_metric_{i}": 0.5 for i in range(12)}}


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def run_progress(progress, epochs=2, steps=50):
    progress.set_params({"epochs": epochs, "steps": steps})
    progress.on_train_begin()
    for epoch in range(epochs):
        progress.on_epoch_begin(epoch)
        for batch in range(steps):
            progress.on_train_batch_end(batch, LOGS)
        progress.on_epoch_end(epoch, LOGS)


def test_mode_follows_verbose_and_the_stream():
    assert progress_mode(0) is None
    assert progress_mode(2) == "epoch"
    assert progress_mode(1) == "live"
    assert progress_mode("auto", FakeTerminal()) == "live"
    assert progress_mode("auto", io.StringIO()) == "epoch"  # a file or a pipe
    with pytest.raises(ValueError, match="verbose"):
        progress_mode(3)


def test_the_line_shows_loss_and_region_dice():
    assert format_logs(LOGS) == "loss 0.482  Dice WT 0.812 TC 0.701 ET 0.655"
    assert format_logs(LOGS, "val_") == "val loss 0.510  val Dice WT 0.804 TC 0.690 ET 0.660"
    # A model compiled with other metrics: the mean Dice, if there is one.
    assert format_logs({"loss": 1.0, "dice_mean": 0.25}) == "loss 1.000  mean Dice 0.250"


def test_epoch_mode_writes_one_plain_line_per_epoch():
    stream = io.StringIO()
    run_progress(TrainingProgress("epoch", stream=stream), epochs=3)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "\r" not in stream.getvalue() and not ANSI.search(stream.getvalue())
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].endswith("val Dice WT 0.804 TC 0.690 ET 0.660")


def test_live_mode_rewrites_one_line_that_fits_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = FakeTerminal()
    progress = TrainingProgress("live", stream=stream, min_interval=0.0)
    run_progress(progress, epochs=2, steps=5)
    text = stream.getvalue()
    updates = text.split("\r")[1:]
    assert len(updates) == 2 * (5 + 1)  # every step and each epoch's summary
    running = [update for update in updates if not update.endswith("\n")]
    assert all(len(update) <= 79 for update in running)
    assert "step 3/5" in running[2] and "Dice WT 0.812" in running[2]
    # One finished line per epoch stays on screen.
    assert text.count("\n") == 2


def test_train_into_a_file_is_a_few_plain_lines_without_tensorflow_logs(tmp_path):
    """`gliseg-nb train > log`: one short line per epoch, no \\r, no ANSI, no C++ log lines."""
    sys.path.insert(0, str(TESTS_DIR))
    from test_train import TINY, write_contrast_dataset

    data = write_contrast_dataset(tmp_path / "data", n_cases=5)
    epochs = 3
    argv = [sys.executable, "-m", "gliseg_nb", "train", str(data), "--out", str(tmp_path / "run")]
    for key, value in {**TINY, "epochs": epochs, "steps_per_epoch": 10}.items():
        value = ",".join(value) if isinstance(value, tuple) else value  # modalities=flair,t1ce
        argv += ["--set", f"{key}={value}"]
    env = {**os.environ, "GLISEG_NB_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore::UserWarning"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a learner's shell has: nothing set
    log = tmp_path / "log"
    with open(log, "wb") as handle:
        result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=900,
                                cwd=TESTS_DIR.parent)
    text = log.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text and not ANSI.search(text), text[:2000]
    found = [marker for marker in TF_LOG_MARKERS if marker in text]
    assert not found, f"TensorFlow log lines in the output ({found}):\n{text}"
    epoch_lines = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in epoch_lines] == [f"epoch {i}/{epochs}" for i in range(1, epochs + 1)]
    assert all("val Dice WT" in line and len(line) <= 100 for line in epoch_lines)
    # A few hundred bytes per epoch (Keras' own bar wrote about 10 KB per epoch of 20 steps).
    assert len(text.encode()) < 400 * epochs + 1200, text


def test_in_a_notebook_each_epoch_is_one_output_updated_in_place():
    """What a saved notebook keeps: one readable line per epoch, no \\r, no stderr."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    source = (
        "from gliseg_nb._progress import TrainingProgress, progress_mode\n"
        f"LOGS = {LOGS!r}\n"
        "progress = TrainingProgress(progress_mode('auto'), min_interval=0.0)\n"
        "progress.set_params({'epochs': 2, 'steps': 3})\n"
        "for epoch in range(2):\n"
        "    progress.on_epoch_begin(epoch)\n"
        "    for batch in range(3):\n"
        "        progress.on_train_batch_end(batch, LOGS)\n"
        "    progress.on_epoch_end(epoch, LOGS)\n"
    )
    notebook = new_notebook(cells=[new_code_cell(source)])
    # Run from the repository root, so that the kernel imports this checkout.
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(TESTS_DIR.parent)}}).execute()
    outputs = notebook.cells[0].outputs
    assert [output.output_type for output in outputs] == ["display_data", "display_data"], outputs
    texts = [output.data["text/plain"] for output in outputs]
    assert [text.split("  ")[0] for text in texts] == ["epoch 1/2", "epoch 2/2"]
    assert all("val Dice WT 0.804" in text and "\r" not in text and "step" not in text for text in texts)


def test_a_progress_bar_saved_in_a_notebook_shows_where_it_ended():
    """The text copy a saved notebook keeps of a tqdm widget says 3/3 and 100 %, not 0/3."""
    import nbformat  # noqa: F401 - nbclient needs it; imported here like the test above
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(cells=[
        new_code_cell("from gliseg_nb._progress_bar import progress_bar\n"
                      "for _ in progress_bar(range(3), desc='cases', unit='case'):\n"
                      "    pass"),
        new_code_cell("with progress_bar(total=2, desc='slices') as bar:\n"
                      "    bar.update(2)\n"
                      "print(type(bar).__mro__[1].__module__)"),
        new_code_cell("for _ in progress_bar(range(2), desc='gone', leave=False):\n"
                      "    pass"),
    ])
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(TESTS_DIR.parent)}}).execute()
    first, second, third = (cell.outputs for cell in notebook.cells)
    assert len(first) == 1 and "application/vnd.jupyter.widget-view+json" in first[0].data, first
    assert "100%" in first[0].data["text/plain"] and "3/3" in first[0].data["text/plain"]
    assert "2/2" in second[0].data["text/plain"]
    assert second[-1].text.strip() == "tqdm.notebook"  # the widget bar, not the text one
    # A bar that asks not to stay is not shown again once it closes.
    assert all("2/2" not in output.get("data", {}).get("text/plain", "") for output in third)


def test_outside_a_notebook_the_progress_bar_is_tqdms_text_bar():
    import tqdm
    import tqdm.notebook

    from gliseg_nb._progress_bar import progress_bar

    stream = io.StringIO()
    bar = progress_bar(range(2), desc="cases", file=stream)
    assert isinstance(bar, tqdm.std.tqdm) and not isinstance(bar, tqdm.notebook.tqdm)
    list(bar)
    assert "2/2" in stream.getvalue()
