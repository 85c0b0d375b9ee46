"""Static figures: a case's four modalities and labels, several cases side by side, training curves.

Slices are drawn the way radiologists read axial images: anterior at the top, the patient's
right on the left of the screen. The orientation is taken from the affine, so BraTS files
(LPS voxel order) and other layouts come out the same way up. Labels are drawn in the
report's colours (`gliseg_nb.labels.label_colormap`): edema green, enhancing yellow,
necrotic core red.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import labels as _labels
from ._boxes import bounding_box
from ._io import atomic_write, output_file
from .errors import ConfigError, DataError, RunError
from .orientation import _check_convention
from .orientation import axial_display  # re-exported: the static figures' orientation

__all__ = ["plot_case", "save_case_figure", "axial_display", "mark_sides"]

_MODALITY_TITLES = _labels.MODALITY_TITLES


def _tumour_slice(labels, images):
    """Axial slice with the most tumour; the largest brain slice if there is no tumour."""
    if labels is not None and np.any(labels > 0):
        return int(np.argmax(np.count_nonzero(labels > 0, axis=(0, 1))))
    reference = next(iter(images.values()))
    return int(np.argmax(np.count_nonzero(reference, axis=(0, 1))))


def mark_sides(axis, convention="radiological", color="white", fontsize=8):
    """Write which side of the patient each edge of an axial or coronal picture shows.

    Parameters
    ----------
    axis : matplotlib.axes.Axes
        The picture to mark.
    convention : {"radiological", "neurological"}, default="radiological"
        How the picture was drawn: ``"radiological"`` (`axial_display`'s default) puts the
        patient's right on the left edge, so "R" goes left and "L" right;
        ``"neurological"`` (nilearn, `gliseg_nb.viewers.ViewerState`) the other way round.
    color : str, default="white"
        Colour of the letters.
    fontsize : float, default=8
        Size of the letters, in points.

    Returns
    -------
    tuple of str
        The letters written at the (left, right) edges.
    """
    _check_convention(convention)
    left, right = ("R", "L") if convention == "radiological" else ("L", "R")
    for x, letter, align in ((0.02, left, "left"), (0.98, right, "right")):
        axis.text(x, 0.5, letter, transform=axis.transAxes, color=color, fontsize=fontsize,
                  va="center", ha=align)
    return left, right


def plot_case(case_data_or_case, slice_index=None, axes=None):
    """Draw one axial slice of a case: the four modalities in grey and the labels over FLAIR.

    Parameters
    ----------
    case_data_or_case : CaseData or Case
        A loaded case (`gliseg_nb.data.load_case`) or a `Case`, which is loaded here.
    slice_index : int or None, default=None
        Axial slice, counted in the arrays given (for a `CaseData` read with ``slices``,
        counted from its first slice). None picks the slice with the most tumour (or, without
        labels, the slice with the most brain).
    axes : sequence of matplotlib.axes.Axes or None, default=None
        One axis per panel (one per modality, plus one for the labels if the case has
        them). None creates a new figure with one row of panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .data import Case, CaseData, load_case

    case_data = case_data_or_case
    if isinstance(case_data, Case):
        case_data = load_case(case_data)
    if not isinstance(case_data, CaseData):
        raise TypeError(f"plot_case expects a CaseData or a Case, got {type(case_data).__name__}")
    images = case_data.images
    if not images:
        raise DataError(f"{case_data.case.case_id}: no modality loaded, nothing to draw")
    labels = case_data.labels
    depth = next(iter(images.values())).shape[2]
    if slice_index is None:
        slice_index = _tumour_slice(labels, images)
    if not 0 <= slice_index < depth:
        raise ConfigError(f"{case_data.case.case_id}: slice {slice_index} outside 0-{depth - 1}")

    order = [m for m in _labels.MODALITIES if m in images]
    n_panels = len(order) + (labels is not None)
    if axes is None:
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, n_panels, figsize=(3.0 * n_panels, 3.6),
                                    layout="constrained")
        axes = np.atleast_1d(axes)
    else:
        axes = list(np.ravel(axes))
        if len(axes) < n_panels:
            raise ValueError(f"plot_case needs {n_panels} axes, got {len(axes)}")
        figure = axes[0].figure

    affine = case_data.affine
    # Zoom on the brain: its bounding box over all slices, so every slice of a case is framed
    # alike (BraTS volumes are mostly background).
    footprint = axial_display(np.any(images[order[0]] != 0, axis=2), affine)
    frame = bounding_box(footprint, margin=4) or (slice(None), slice(None))
    for axis, modality in zip(axes, order):
        picture = axial_display(images[modality][:, :, slice_index], affine)[frame]
        brain = picture[picture > 0]
        # Window on the brain's own percentiles: raw MRI intensities have no fixed scale.
        low, high = np.percentile(brain, (0.5, 99.5)) if brain.size else (0.0, 1.0)
        axis.imshow(picture, cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
                    interpolation="nearest")
        axis.set_title(_MODALITY_TITLES[modality])
    if labels is not None:
        axis = axes[len(order)]
        background = order[0]
        picture = axial_display(images[background][:, :, slice_index], affine)[frame]
        brain = picture[picture > 0]
        low, high = np.percentile(brain, (0.5, 99.5)) if brain.size else (0.0, 1.0)
        axis.imshow(picture, cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
                    interpolation="nearest")
        cmap, norm = _labels.label_colormap()
        overlay = axial_display(labels[:, :, slice_index], affine)[frame]
        axis.imshow(np.ma.masked_equal(overlay, 0), cmap=cmap, norm=norm, alpha=0.55,
                    interpolation="nearest")
        axis.set_title(f"labels on {_MODALITY_TITLES[background]}")
        axis.legend(handles=_labels.legend_handles(), loc="upper center",
                    bbox_to_anchor=(0.5, -0.02), fontsize="x-small", frameon=False)
    for axis in axes[:n_panels]:
        axis.set_xticks([])
        axis.set_yticks([])
        mark_sides(axis)  # axial_display's radiological convention
    first = case_data.slices.start if case_data.slices is not None else 0
    figure.suptitle(f"{case_data.case.case_id}, axial slice {first + slice_index}")
    return figure


def save_case_figure(data_dir, out_path, case_id=None, slice_index=None):
    """Draw one case (`plot_case`) and save it as an image file.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        Folder holding BraTS cases in any layout (`gliseg_nb.data.find_cases`).
    out_path : str or pathlib.Path
        Image file to write (PNG, SVG, PDF, ... by its extension); folders are created.
    case_id : str or None, default=None
        The case to draw. None draws the first case (by id).
    slice_index : int or None, default=None
        Axial slice. None picks the slice with the most tumour.

    Returns
    -------
    pathlib.Path
        `out_path`, ``~`` expanded.

    Raises
    ------
    gliseg_nb.DataError
        If `data_dir` holds no case, or no case `case_id`.
    gliseg_nb.RunError
        If `out_path` is a folder or cannot be written.
    """
    # Matplotlib falls back to its Agg backend by itself where there is no display.
    import matplotlib.pyplot as plt

    from .data import find_cases

    cases = find_cases(data_dir)
    if case_id is None:
        case = cases[0]
    else:
        matches = [c for c in cases if c.case_id == case_id]
        if not matches:
            known = ", ".join(c.case_id for c in cases[:5]) + (", ..." if len(cases) > 5 else "")
            raise DataError(f"{data_dir}: no case {case_id!r} (found: {known})")
        case = matches[0]
    # Checked before drawing: a path that cannot be written fails at once, naming it.
    out_path = output_file(out_path, what="image file")
    figure = plot_case(case, slice_index=slice_index)
    try:
        _save_figure(figure, out_path)
    finally:
        plt.close(figure)
    return out_path


def _save_figure(figure, path):
    """``figure.savefig`` atomically: a reader never sees half an image, an error leaves none."""
    path = output_file(path, what="image file")
    try:
        # The temporary name keeps the extension: matplotlib picks the format from it.
        with atomic_write(path, mode=None, suffix=path.suffix) as tmp:
            figure.savefig(tmp, dpi=110)
    except OSError as error:
        raise RunError(f"{path}: cannot write the image ({error.strerror or error})") from error
    return path


# -- several cases side by side ------------------------------------------------------------------
__all__ += ["plot_case_gallery"]


def _outline_labels(axis, labels_2d, linewidth):
    """Outline each tumour class of a display-oriented label slice in its own colour."""
    for class_id in (1, 2, 3):
        mask = labels_2d == class_id
        if mask.any():
            axis.contour(mask, levels=[0.5], colors=[_labels.CLASS_COLORS[class_id]],
                         linewidths=linewidth)


def plot_case_gallery(cases, modalities=("flair", "t1ce"), titles=None, axes=None,
                      linewidth=1.0):
    """Several cases side by side: one axial slice through each tumour, label outlines on top.

    One column per case, one row per modality. Each case is cut through its axial slice
    with the most tumour (the largest brain slice if it has none); only that slice of each
    image is read. Labels are outlined, not filled, in the report's colours (one colour per
    class, `gliseg_nb.labels.CLASS_COLORS`), so the image underneath stays visible.
    Slices are shown in the radiological convention, like `plot_case`.

    Parameters
    ----------
    cases : sequence of Case or CaseData
        The cases to draw (`gliseg_nb.data.find_cases` or `load_case`); a `Case` is read
        here (its labels, then one slice of each modality in `modalities`).
    modalities : sequence of str, default=("flair", "t1ce")
        One row per modality, in this order.
    titles : sequence of str or None, default=None
        One column title per case; None uses the case ids. Newlines are allowed.
    axes : 2-D array of matplotlib.axes.Axes or None, default=None
        ``len(modalities)`` rows by ``len(cases)`` columns; None creates the figure.
    linewidth : float, default=1.0
        Width of the outlines, in points.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .data import Case, CaseData, load_case

    cases = list(cases)
    modalities = list(modalities)
    if not cases:
        raise ValueError("plot_case_gallery needs at least one case")
    unknown = [m for m in modalities if m not in _labels.MODALITIES]
    if not modalities or unknown:
        raise ValueError(f"modalities must be a non-empty subset of {list(_labels.MODALITIES)}, "
                         f"got {modalities}")
    if titles is not None and len(titles) != len(cases):
        raise ValueError(f"titles: {len(titles)} given for {len(cases)} cases")
    if axes is None:
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(len(modalities), len(cases), squeeze=False,
                                    figsize=(2.3 * len(cases), 2.6 * len(modalities) + 0.4),
                                    layout="constrained")
    axes = np.asarray(axes, dtype=object).reshape(len(modalities), len(cases))
    figure = axes[0, 0].figure

    for column, case in enumerate(cases):
        if isinstance(case, Case):
            labels_only = load_case(case, modalities=[])
            labels = labels_only.labels
            if labels is None:
                raise DataError(f"{case.case_id}: no segmentation, nothing to outline")
            # The tumour slice from the labels alone; then one slice of each image.
            per_slice = np.count_nonzero(labels, axis=(0, 1))
            if per_slice.any():
                index = int(np.argmax(per_slice))
            else:
                index = labels.shape[2] // 2
            case_data = load_case(case, modalities=modalities, slices=(index, index + 1))
            slice_index = 0
        elif isinstance(case, CaseData):
            case_data = case
            missing = [m for m in modalities if m not in case_data.images]
            if missing:
                raise DataError(f"{case_data.case.case_id}: modalities {missing} not loaded")
            slice_index = _tumour_slice(case_data.labels, {m: case_data.images[m] for m in modalities})
        else:
            raise TypeError(f"plot_case_gallery expects Case or CaseData items, got {type(case).__name__}")
        affine = case_data.affine
        reference = axial_display(case_data.images[modalities[0]][:, :, slice_index], affine)
        frame = bounding_box(reference != 0, margin=3) or (slice(None), slice(None))
        outline = None
        if case_data.labels is not None:
            outline = axial_display(case_data.labels[:, :, slice_index], affine)[frame]
        for row, modality in enumerate(modalities):
            axis = axes[row, column]
            picture = axial_display(case_data.images[modality][:, :, slice_index], affine)[frame]
            brain = picture[picture > 0]
            low, high = np.percentile(brain, (0.5, 99.5)) if brain.size else (0.0, 1.0)
            axis.imshow(picture, cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
                        interpolation="nearest")
            if outline is not None:
                _outline_labels(axis, outline, linewidth)
            mark_sides(axis)  # axial_display's radiological convention
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(_MODALITY_TITLES[modality])
        first = case_data.slices.start if case_data.slices is not None else 0
        title = titles[column] if titles is not None else case_data.case.case_id
        axes[0, column].set_title(f"{title}\nslice {first + slice_index}", fontsize=8)
    return figure


# -- training curves (report figure 7.1) ---------------------------------------------------------
__all__ += ["plot_history"]


def plot_history(history, axes=None, path=None):
    """Training curves from a run's log: loss, mean Dice, Dice per class, learning rate.

    The report's figure 7.1 shows accuracy and loss; accuracy is close to 1 from the first
    epoch (background is about 98 % of the pixels), so here the Dice of each tumour class
    takes its place.

    Parameters
    ----------
    history : str, pathlib.Path, pandas.DataFrame or dict
        ``history.csv`` written by `gliseg_nb.train.fit` (or the run folder holding it), the
        same read into a DataFrame, or a dict of lists such as ``keras.callbacks.History``'s
        ``history`` or what `gliseg_nb.train.fit` returns.
    axes : array of 4 matplotlib.axes.Axes, optional
        Where to draw; default=None creates a 2 x 2 figure.
    path : str or pathlib.Path, optional
        Also save the figure there; default=None saves nothing.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    columns = _history_columns(history)
    if "loss" not in columns:
        raise ValueError(f"history has no 'loss' column (found: {', '.join(sorted(columns)) or 'nothing'})")
    n_epochs = len(columns["loss"])
    # Epochs counted from 1, as Keras prints them.
    epochs = np.asarray(columns.get("epoch", range(n_epochs)), dtype=float) + 1
    if axes is None:
        figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    axes = np.asarray(axes).ravel()
    if axes.size < 4:
        raise ValueError(f"plot_history needs 4 axes, got {axes.size}")
    figure = axes[0].figure

    def curve(ax, key, **style):
        if key in columns:
            ax.plot(epochs, columns[key], marker="o", markersize=3, **style)

    curve(axes[0], "loss", label="training", color="C0")
    curve(axes[0], "val_loss", label="validation", color="C1")
    axes[0].set_title("Loss")
    curve(axes[1], "dice_mean", label="training", color="C0")
    curve(axes[1], "val_dice_mean", label="validation", color="C1")
    axes[1].set_title("Mean Dice of the tumour classes")
    axes[1].set_ylim(0, 1)
    for class_id in (1, 2, 3):
        color = _labels.CLASS_COLORS[class_id]
        name = _labels.CLASS_NAMES[class_id]
        curve(axes[2], f"val_dice_class{class_id}", label=f"{name} (validation)", color=color)
        curve(axes[2], f"dice_class{class_id}", label=f"{name} (training)", color=color, linestyle="--",
              alpha=0.6)
    axes[2].set_title("Dice per class")
    axes[2].set_ylim(0, 1)
    if "learning_rate" in columns:
        curve(axes[3], "learning_rate", color="C2")
        axes[3].set_yscale("log")
        axes[3].set_title("Learning rate")
    else:
        axes[3].set_axis_off()
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:4]:
        if ax.has_data():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    figure.tight_layout()
    if path is not None:
        _save_figure(figure, path)
    return figure


def _history_columns(history):
    """Columns of a training log as ``{name: list of float}``."""
    if isinstance(history, (str, os.PathLike)):
        from .runs import HISTORY_FILE, read_history

        path = Path(history).expanduser()
        if path.is_dir():
            path = path / HISTORY_FILE
        if not path.is_file():
            raise ValueError(f"{path}: no training log ({HISTORY_FILE}) found")
        columns = read_history(path)
        if not columns.get("epoch"):
            raise ValueError(f"{path}: the training log has no finished epoch yet")
        return {key: [float(value) for value in values] for key, values in columns.items()}
    if hasattr(history, "to_dict") and hasattr(history, "columns"):  # a pandas DataFrame
        return {str(key): [float(v) for v in history[key]] for key in history.columns}
    if hasattr(history, "history") and isinstance(history.history, dict):  # keras History
        history = history.history
    if isinstance(history, dict):
        return {str(key): [float(v) for v in values] for key, values in history.items()}
    raise ValueError(f"plot_history expects a CSV path, a DataFrame or a dict, got {type(history).__name__}")


# -- scores per case, by region ------------------------------------------------------------------
__all__ += ["plot_region_scores"]


def plot_region_scores(rows, metric="dice", ax=None, path=None, title=None):
    """A box plot of one metric per region over cases, every case drawn as a dot.

    Each region has the colour of `gliseg_nb.labels.REGION_COLORS`; the box spans the
    quartiles, the line inside it is the median, the white diamond the mean. With a few
    dozen cases the dots matter as much as the box: a single case at Dice 0 (an empty-mask
    penalty) is a dot far below the box and moves the mean, not the median.

    Parameters
    ----------
    rows : list of dict
        Rows of `gliseg_nb.metrics.evaluate_folder` (``{"case_id", "scores"}``) or plain
        `gliseg_nb.metrics.evaluate_case` dicts; at least one.
    metric : str, default="dice"
        The per-region score drawn (``"dice"``, ``"hd95"``, ...).
    ax : matplotlib.axes.Axes or None, default=None
        Where to draw; None creates a new figure.
    path : str or pathlib.Path or None, default=None
        Also save the figure there; None saves nothing.
    title : str or None, default=None
        Axis title; None writes the metric and the number of cases.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If `rows` is empty or a case lacks `metric` for a region.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_region_scores: no scores to draw")
    per_case = [row["scores"] if "scores" in row else row for row in rows]
    regions = list(_labels.REGIONS)
    try:
        values = [np.array([scores[region][metric] for scores in per_case], dtype=float) for region in regions]
    except KeyError:
        raise ValueError(f"plot_region_scores: a case has no {metric!r} score for every region") from None
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    figure = ax.figure
    boxes = ax.boxplot(values, patch_artist=True, showmeans=True, widths=0.55, showfliers=False,
                       medianprops={"color": "black", "linewidth": 1.5},
                       meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                  "markersize": 6})
    ax.set_xticks(range(1, len(regions) + 1), [f"{r}\n{_labels.REGION_NAMES[r]}" for r in regions])
    for patch, region in zip(boxes["boxes"], regions):
        patch.set_facecolor((*_labels.REGION_COLORS[region], 0.55))
        patch.set_edgecolor("black")
    for position, region_values in enumerate(values, start=1):
        # A fixed spread of offsets instead of random jitter: the figure is the same every run.
        offsets = (np.arange(region_values.size) % 7 - 3) * 0.045
        ax.scatter(position + offsets, region_values, s=14, color="black", alpha=0.7, zorder=3,
                   linewidths=0)
    if metric in ("dice", "sensitivity", "lesion_dice"):
        ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel({"dice": "Dice", "hd95": "HD95 (mm)", "lesion_dice": "lesion-wise Dice"}.get(metric, metric))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title if title is not None else f"{metric} per case ({len(per_case)} cases)")
    if path is not None:
        _save_figure(figure, path)
    return figure
