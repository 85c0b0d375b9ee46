"""A compact training progress display: epoch, step, loss and the region Dice, one line.

Keras' own progress bar prints every logged metric (about 20 here) on each update: 280-540
characters, wider than a terminal, so it cannot overwrite itself; written to a file it
leaves hundreds of kilobytes of ANSI codes. This callback shows what a learner watches,
the loss and the Dice of the BraTS regions WT, TC and ET; ``history.csv`` keeps every
metric. Three forms, chosen by `progress_mode`:

``"live"``
    On a terminal: one line that rewrites itself (``\\r``) during the epoch, cut to the
    terminal's width, and stays as the epoch's summary. In a notebook: the same line as an
    output that updates in place (an IPython display), one per epoch, so the saved
    notebook holds one readable line per epoch.
``"epoch"``
    Anywhere else (a log file, a pipe, CI): one plain line per epoch, no ``\\r``, no ANSI.
``None``
    Nothing (``verbose=0``).
"""

from __future__ import annotations

import shutil
import sys
import time

import keras

__all__ = ["TrainingProgress", "format_logs", "progress_mode"]

#: The region Dice keys, as `gliseg_nb.metrics.keras_metrics.RegionDiceScore` names them.
_REGION_KEYS = (("WT", "dice_wt"), ("TC", "dice_tc"), ("ET", "dice_et"))


def _in_notebook():
    """True inside a Jupyter kernel (ipykernel), where stdout is not a terminal but updates."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    # Colab's shell is a subclass of ipykernel's, under another name.
    return (ip is not None and type(ip).__name__ == "ZMQInteractiveShell") or "google.colab" in sys.modules


def progress_mode(verbose="auto", stream=None):
    """The progress form for Keras' `verbose` setting and the output stream.

    Parameters
    ----------
    verbose : "auto", 0, 1 or 2, default="auto"
        0: nothing. 1: the live line. 2: one line per epoch. "auto": the live line on a
        terminal or in a notebook, one line per epoch otherwise.
    stream : file object, optional
        Where the progress goes; default=None: ``sys.stdout``.

    Returns
    -------
    {"live", "epoch"} or None
    """
    if verbose in (0, False):
        return None
    if verbose == 2:
        return "epoch"
    if verbose in (1, True):
        return "live"
    if verbose != "auto":
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if _in_notebook() or (isatty is not None and isatty()):
        return "live"
    return "epoch"


def _number(value):
    return f"{float(value):.3f}"


def format_logs(logs, prefix=""):
    """``"loss 0.482  Dice WT 0.812 TC 0.701 ET 0.655"`` from Keras logs (missing keys left out)."""
    logs = logs or {}
    parts = []
    if f"{prefix}loss" in logs:
        parts.append(f"{prefix.replace('_', ' ')}loss {_number(logs[prefix + 'loss'])}")
    regions = [f"{name} {_number(logs[prefix + key])}" for name, key in _REGION_KEYS if prefix + key in logs]
    if regions:
        parts.append(f"{prefix.replace('_', ' ')}Dice " + " ".join(regions))
    elif f"{prefix}dice_mean" in logs:  # a model compiled with other metrics
        parts.append(f"{prefix.replace('_', ' ')}mean Dice {_number(logs[prefix + 'dice_mean'])}")
    return "  ".join(parts)


class TrainingProgress(keras.callbacks.Callback):
    """One line of progress per epoch: epoch, step/total, loss and the region Dice.

    Use it with ``model.fit(..., verbose=0)`` (`gliseg_nb.train.fit` does).

    Parameters
    ----------
    mode : {"live", "epoch"}, default="live"
        See the module docstring; `progress_mode` picks it from Keras' `verbose`.
    stream : file object, optional
        Default=None: ``sys.stdout`` at the time of each write (so that notebooks and
        pytest's capture see it).
    min_interval : float, default=0.25
        Seconds between two updates of the live line.
    """

    def __init__(self, mode="live", stream=None, min_interval=0.25):
        super().__init__()
        if mode not in ("live", "epoch"):
            raise ValueError(f"mode must be 'live' or 'epoch', got {mode!r}")
        self.mode = mode
        self._stream = stream
        self.min_interval = float(min_interval)
        self._handle = None
        self._last_update = 0.0
        self._epoch_start = 0.0
        self._epoch = 0
        self._notebook = mode == "live" and _in_notebook()

    @property
    def stream(self):
        return sys.stdout if self._stream is None else self._stream

    # -- what is shown --------------------------------------------------------------------
    def _head(self, epoch):
        epochs = self.params.get("epochs") if self.params else None
        return f"epoch {epoch + 1}/{epochs}" if epochs else f"epoch {epoch + 1}"

    def _step_line(self, step, logs):
        steps = self.params.get("steps") if self.params else None
        where = f"step {step}/{steps}" if steps else f"step {step}"
        seconds = time.perf_counter() - self._epoch_start
        return "  ".join(part for part in (self._head(self._epoch), where, format_logs(logs), f"{seconds:.0f} s") if part)

    def _epoch_line(self, epoch, logs):
        seconds = time.perf_counter() - self._epoch_start
        logs = logs or {}
        if any(key.startswith("val_") for key in logs):
            # The validation Dice is the one that matters at the end of an epoch; the
            # training loss stays, to see over- or under-fitting at a glance.
            scores = [f"loss {_number(logs['loss'])}" if "loss" in logs else "", format_logs(logs, "val_")]
        else:
            scores = [format_logs(logs)]
        return "  ".join(part for part in (self._head(epoch), f"{seconds:.0f} s", *scores) if part)

    # -- where it goes --------------------------------------------------------------------
    def _show(self, text, final):
        if self._notebook:
            self._show_in_notebook(text)
            return
        if self.mode == "epoch":
            if final:
                print(text, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size((100, 24)).columns - 1
        # The running line must fit, or "\r" cannot take it back; the epoch's last line
        # stays on screen, so it may wrap rather than lose its end.
        shown = text if final else text[:width]
        # Padding wipes the end of a longer previous line.
        self.stream.write("\r" + shown.ljust(width) + ("\n" if final else ""))
        self.stream.flush()

    def _show_in_notebook(self, text):
        from IPython.display import Pretty, display

        if self._handle is None:
            self._handle = display(Pretty(text), display_id=True)
        else:
            self._handle.update(Pretty(text))

    # -- Keras hooks ----------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        self._last_update = 0.0
        self._handle = None  # a new output line per epoch in a notebook

    def on_train_batch_end(self, batch, logs=None):
        if self.mode != "live":
            return
        now = time.perf_counter()
        if now - self._last_update < self.min_interval:
            return
        self._last_update = now
        self._show(self._step_line(batch + 1, logs), final=False)

    def on_epoch_end(self, epoch, logs=None):
        self._show(self._epoch_line(epoch, logs), final=True)
