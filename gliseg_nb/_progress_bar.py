"""Progress bars (tqdm) whose saved notebook output says where they ended.

In a notebook, `tqdm.auto` draws a widget. The output Jupyter saves with it also holds a
text copy, for every viewer that cannot draw widgets (GitHub, text views, the HTML pages
of `gliseg-nb tour`), and tqdm writes that copy once, when the bar appears: an executed
notebook then reads ``synthetic cases:   0%|          | 0/24`` forever, as if the work had
never started (tqdm issue #1120). The bar here is shown through an IPython display handle
and shown again when it closes, so the saved copy is the final state (``24/24``). Outside
a notebook it is `tqdm.auto`'s bar unchanged.

This module imports nothing heavy: the dataset's worker processes use it.
"""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(*args, **kwargs):
    """A `tqdm.auto.tqdm` bar; in a notebook, one whose saved output shows its final state.

    Parameters
    ----------
    *args, **kwargs
        Those of `tqdm.tqdm` (``iterable``, ``total``, ``desc``, ``unit``, ``disable``, ...).

    Returns
    -------
    tqdm.tqdm
        Usable as an iterator, with ``update``, and as a context manager.
    """
    import sys

    from tqdm.auto import tqdm

    # tqdm.auto imports tqdm.notebook (and ipywidgets) only inside a notebook: elsewhere
    # there is nothing to check, and importing it here would cost a terminal 0.14 s.
    notebook = sys.modules.get("tqdm.notebook")
    if notebook is None or not issubclass(tqdm, notebook.tqdm) or kwargs.get("delay", 0) > 0:
        # A terminal, a file, no ipywidgets; or a delayed bar, which tqdm displays itself.
        return tqdm(*args, **kwargs)
    return _notebook_bar_class()(*args, **kwargs)


_NOTEBOOK_BAR = None


def _notebook_bar_class():
    """`tqdm.notebook.tqdm`, displayed through a handle that is updated when it closes."""
    global _NOTEBOOK_BAR
    if _NOTEBOOK_BAR is None:
        from IPython.display import display
        from tqdm.notebook import tqdm as notebook_tqdm

        class NotebookBar(notebook_tqdm):
            def __init__(self, *args, **kwargs):
                show = kwargs.pop("display", True)
                # tqdm would display the widget itself, without a handle to update.
                super().__init__(*args, display=False, **kwargs)
                self._handle = None
                if show and not self.disable and hasattr(self, "container"):
                    self._handle = display(self.container, display_id=True)
                    self.displayed = True

            def close(self):
                super().close()
                handle, self._handle = getattr(self, "_handle", None), None
                if handle is not None and self.leave:
                    # Shown again: the widget's text copy is rewritten with the final counts.
                    handle.update(self.container)

        _NOTEBOOK_BAR = NotebookBar
    return _NOTEBOOK_BAR
