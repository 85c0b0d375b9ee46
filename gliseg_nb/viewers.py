"""Interactive slice viewers for one case, and for a ground truth beside a prediction.

Two layers, kept apart on purpose:

* `ViewerState` is a plain dataclass with no matplotlib and no widgets in it. It knows the
  plane, the slice, the modality, whether the labels are drawn and how opaquely, and it cuts
  2-D slices out of the volumes ready to be shown. Tests (and curious learners) drive it
  directly.
* `CaseViewer` and `ComparisonViewer` are a thin ipywidgets layer: each control writes into
  the state, then the view is redrawn with matplotlib into an ``Output`` widget. This works
  with the plain inline backend (Jupyter, JupyterLab, Colab, Binder) and needs no ipympl.
  Where no widget front end exists (nbval, a static HTML page, GitHub's notebook preview),
  ``static_figure()`` draws the same view as an ordinary figure.

Orientation
-----------
`ViewerState.from_case` flips the arrays (never permutes them) so that the voxel axes point
to the patient's Right, Anterior and Superior (RAS+), using the image affine
(`gliseg_nb.orientation`, which also owns the display conventions). Slices are
then returned as ``(rows, columns)`` arrays for ``imshow(..., origin="upper")``:

==========  ===========  ===============================  ============================
plane       fixed axis   rows (top to bottom)             columns (left to right)
==========  ===========  ===============================  ============================
axial       z            anterior to posterior (Y axis)   X axis
coronal     y            superior to inferior (Z axis)    X axis
sagittal    x            superior to inferior (Z axis)    posterior to anterior (Y)
==========  ===========  ===============================  ============================

The X axis runs in the *neurological* convention by default (the patient's left on the
left of the screen, as nilearn draws it). Radiologists read images in the *radiological*
convention (the patient's right on the left of the screen, as if facing the patient);
``convention="radiological"`` flips the columns of the axial and coronal views.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._boxes import bounding_box
from ._boxes import centre as box_centre
from .labels import CLASS_COLORS, CLASS_NAMES, MODALITIES, MODALITY_TITLES, label_colormap
from .orientation import DISPLAY_CONVENTIONS as CONVENTIONS
from .orientation import PLANES, display_slice, flip_to_ras, ras_flips

__all__ = ["PLANES", "CONVENTIONS", "ViewerState", "CaseViewer", "ComparisonViewer", "draw_view"]


_MODALITY_ORDER = MODALITIES
_MODALITY_TITLES = MODALITY_TITLES


@dataclass(eq=False)
class ViewerState:
    """What a slice viewer shows, with no drawing in it.

    Assigning to a field validates it: an unknown plane, modality or convention raises
    ``ValueError``, an opacity outside [0, 1] raises ``ValueError``, and a slice index (or
    cursor coordinate) outside the volume is clamped to the nearest valid slice.

    Parameters
    ----------
    images : dict of str to numpy.ndarray
        Modality name -> 3-D volume (X, Y, Z), all the same shape, ideally RAS+ oriented
        (`from_case` takes care of that).
    labels : numpy.ndarray or None, default=None
        Internal labels 0-3, same shape as the images (the ground truth).
    prediction : numpy.ndarray or None, default=None
        Predicted internal labels 0-3, same shape, for a comparison view.
    plane : {"axial", "coronal", "sagittal"}, default="axial"
        Viewing plane.
    modality : str or None, default=None
        Modality drawn underneath the labels; None picks FLAIR if present, else the first.
    overlay : bool, default=True
        Draw the labels over the image.
    opacity : float, default=0.5
        Opacity of the label overlay, between 0 and 1.
    convention : {"neurological", "radiological"}, default="neurological"
        Left-right convention of the axial and coronal views (see the module docstring).
    cursor : tuple of int or None, default=None
        The 3-D point (x, y, z) the viewer is looking at; each plane shows the slice through
        it. None starts at the centre of the tumour (of the ground truth, else of the
        prediction), or at the centre of the volume when there is no tumour.
    zooms : tuple of float, default=(1.0, 1.0, 1.0)
        Voxel size in millimetres, used for the aspect ratio of coronal and sagittal views.
    axial_offset : int, default=0
        Index of the first loaded axial slice in the file (`CaseData.slices.start`), so
        titles can name the slice as it is numbered on disk.
    name : str, default=""
        A name for titles (the case id).
    """

    images: dict
    labels: np.ndarray | None = None
    prediction: np.ndarray | None = None
    plane: str = "axial"
    modality: str | None = None
    overlay: bool = True
    opacity: float = 0.5
    convention: str = "neurological"
    cursor: tuple | None = None
    zooms: tuple = (1.0, 1.0, 1.0)
    axial_offset: int = 0
    name: str = ""
    _display_ranges: dict = field(default_factory=dict, init=False, repr=False)

    # -- construction ---------------------------------------------------------------------
    def __post_init__(self):
        if not self.images:
            raise ValueError("ViewerState needs at least one image volume")
        shapes = {name: np.shape(volume) for name, volume in self.images.items()}
        shape = next(iter(shapes.values()))
        if len(shape) != 3 or any(s != shape for s in shapes.values()):
            raise ValueError(f"images must be 3-D volumes of one shape, got {shapes}")
        for what in ("labels", "prediction"):
            volume = getattr(self, what)
            if volume is not None and np.shape(volume) != shape:
                raise ValueError(f"{what} shape {np.shape(volume)} differs from the images' {shape}")
        if self.modality is None:
            self.modality = "flair" if "flair" in self.images else next(iter(self.images))
        if self.cursor is None:
            self.cursor = self.tumour_centre()

    @classmethod
    def from_case(cls, case_data, prediction=None, **options):
        """A state for a loaded case (`gliseg_nb.data.CaseData`), oriented RAS+.

        Parameters
        ----------
        case_data : gliseg_nb.data.CaseData
            The loaded case: its ``images``, ``labels``, ``affine``, ``zooms`` and ``slices``
            are used.
        prediction : numpy.ndarray or None, default=None
            Predicted internal labels in the same array order as ``case_data.labels``.
        **options
            Any other `ViewerState` field (``plane``, ``modality``, ``opacity``, ...).

        Returns
        -------
        ViewerState
        """
        flips = ras_flips(case_data.affine)
        images = {
            name: flip_to_ras(case_data.images[name], flips)
            for name in sorted(case_data.images, key=_modality_sort_key)
        }
        slices = getattr(case_data, "slices", None)
        offset = (slices.start or 0) if isinstance(slices, slice) else 0
        if flips is not None and flips[2]:
            # The z axis was reversed, so displayed slice i is not loaded slice i: number the
            # slices as displayed rather than mislabel them.
            offset = 0
        case = getattr(case_data, "case", None)
        options.setdefault("name", getattr(case, "case_id", ""))
        return cls(
            images=images,
            labels=flip_to_ras(case_data.labels, flips),
            prediction=flip_to_ras(None if prediction is None else np.asarray(prediction), flips),
            zooms=tuple(float(z) for z in case_data.zooms[:3]),
            axial_offset=offset,
            **options,
        )

    # -- validation on every assignment -----------------------------------------------------
    def __setattr__(self, name, value):
        if name == "plane" and value not in PLANES:
            raise ValueError(f"plane must be one of {list(PLANES)}, got {value!r}")
        if name == "convention" and value not in CONVENTIONS:
            raise ValueError(f"convention must be one of {list(CONVENTIONS)}, got {value!r}")
        if name == "opacity":
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"opacity must be between 0 and 1, got {value}")
        if name == "modality" and value is not None and value not in self.images:
            raise ValueError(f"modality must be one of {list(self.images)}, got {value!r}")
        if name == "overlay":
            value = bool(value)
        if name == "cursor" and value is not None:
            value = self._clamp_point(value)
        super().__setattr__(name, value)

    def _clamp_point(self, point):
        if len(point) != 3:
            raise ValueError(f"cursor must be a 3-D point (x, y, z), got {point!r}")
        return tuple(int(np.clip(int(round(p)), 0, n - 1)) for p, n in zip(point, self.shape))

    # -- geometry -----------------------------------------------------------------------------
    @property
    def shape(self):
        """Shape (X, Y, Z) of the volumes."""
        return np.shape(next(iter(self.images.values())))

    @property
    def axis(self):
        """The volume axis the current plane holds fixed (axial 2, coronal 1, sagittal 0)."""
        return PLANES[self.plane]

    @property
    def n_slices(self):
        """Number of slices in the current plane."""
        return self.shape[self.axis]

    @property
    def slice_index(self):
        """Index of the shown slice along the current plane's axis (clamped on assignment)."""
        return self.cursor[self.axis]

    @slice_index.setter
    def slice_index(self, index):
        point = list(self.cursor)
        point[self.axis] = index
        self.cursor = tuple(point)

    def tumour_centre(self):
        """Centre (x, y, z) of the tumour's bounding box, or of the volume if none.

        The ground truth is used when present, else the prediction. The box centre, unlike
        the centre of mass, always lies within the tumour's extent on every axis.

        Returns
        -------
        tuple of int
        """
        for volume in (self.labels, self.prediction):
            if volume is not None:
                box = bounding_box(np.asarray(volume) > 0)
                if box is not None:
                    return tuple(int(c) for c in box_centre(box))
        return tuple(n // 2 for n in self.shape)

    def set_plane(self, plane, recentre=False):
        """Switch plane, keeping the same 3-D point in view (or recentring on the tumour).

        Parameters
        ----------
        plane : {"axial", "coronal", "sagittal"}
            The new plane.
        recentre : bool, default=False
            Move the cursor to the tumour centre first (see `tumour_centre`).

        Returns
        -------
        int
            The slice index shown in the new plane.
        """
        self.plane = plane
        if recentre:
            self.cursor = self.tumour_centre()
        return self.slice_index

    # -- slices -------------------------------------------------------------------------------
    def _cut(self, volume):
        """One slice of `volume` through the cursor, as (rows, columns) for display."""
        index = self.slice_index
        if self.plane == "axial":
            plane = volume[:, :, index]
        elif self.plane == "coronal":
            plane = volume[:, index, :]
        else:
            plane = volume[index, :, :]
        return display_slice(plane, self.plane, self.convention)

    def image_slice(self, modality=None):
        """The current slice of an image, as a (rows, columns) array for display.

        Parameters
        ----------
        modality : str or None, default=None
            Which image; None means the current `modality`.

        Returns
        -------
        numpy.ndarray
            Axial: (Y, X); coronal: (Z, X); sagittal: (Z, Y).
        """
        modality = self.modality if modality is None else modality
        if modality not in self.images:
            raise ValueError(f"modality must be one of {list(self.images)}, got {modality!r}")
        return self._cut(self.images[modality])

    def label_slice(self, source="labels"):
        """The current slice of the labels (or of the prediction), oriented like `image_slice`.

        Parameters
        ----------
        source : {"labels", "prediction"}, default="labels"
            The ground truth or the prediction.

        Returns
        -------
        numpy.ndarray or None
            None when that volume was not given.
        """
        if source not in ("labels", "prediction"):
            raise ValueError(f"source must be 'labels' or 'prediction', got {source!r}")
        volume = getattr(self, source)
        return None if volume is None else self._cut(volume)

    def aspect(self):
        """Height/width of one displayed pixel in millimetres (for ``imshow(aspect=...)``)."""
        row_axis, column_axis = {"axial": (1, 0), "coronal": (2, 0), "sagittal": (2, 1)}[self.plane]
        return float(self.zooms[row_axis]) / float(self.zooms[column_axis])

    def orientation_labels(self):
        """Anatomical letters at the (left, right, top, bottom) edges of the current view."""
        if self.plane == "sagittal":
            return ("P", "A", "S", "I")
        left, right = ("L", "R") if self.convention == "neurological" else ("R", "L")
        top, bottom = ("A", "P") if self.plane == "axial" else ("S", "I")
        return (left, right, top, bottom)

    def display_range(self, modality=None):
        """Grey-level window (low, high) of a modality: its 0.5th-99.5th brain percentiles.

        One window per volume, not per slice, so moving through slices does not change the
        contrast. Computed once on every second voxel per axis and cached.
        """
        modality = self.modality if modality is None else modality
        if modality not in self._display_ranges:
            sample = np.asarray(self.images[modality])[::2, ::2, ::2]
            brain = sample[sample != 0]
            if brain.size == 0:
                low, high = 0.0, 1.0
            else:
                low, high = (float(v) for v in np.percentile(brain, [0.5, 99.5]))
                if high <= low:
                    high = low + 1.0
            self._display_ranges[modality] = (low, high)
        return self._display_ranges[modality]

    def slice_title(self):
        """A short title naming the plane and the slice (0-based, as NumPy counts)."""
        if self.plane == "axial" and self.axial_offset:
            return (f"axial slice {self.slice_index + self.axial_offset} of the file "
                    f"({self.slice_index + 1} of the {self.n_slices} loaded)")
        return f"{self.plane} slice {self.slice_index} / {self.n_slices}"


def _modality_sort_key(name):
    return (_MODALITY_ORDER.index(name) if name in _MODALITY_ORDER else len(_MODALITY_ORDER), name)


# -- drawing (matplotlib only from here on) ---------------------------------------------------
def draw_view(ax, state, source="labels", title=None, show_orientation=True):
    """Draw the state's current slice, with its labels if the overlay is on, into `ax`.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; cleared first.
    state : ViewerState
        What to draw.
    source : {"labels", "prediction"}, default="labels"
        Which label volume goes on top of the image.
    title : str or None, default=None
        Axes title; None uses the modality name.
    show_orientation : bool, default=True
        Write the anatomical letters (L/R, A/P, S/I) at the edges.
    """
    cmap, norm = label_colormap()
    low, high = state.display_range()
    ax.clear()
    ax.imshow(state.image_slice(), cmap="gray", vmin=low, vmax=high, aspect=state.aspect(),
              interpolation="nearest")
    labels = state.label_slice(source)
    if state.overlay and labels is not None and state.opacity > 0:
        # Background is transparent in the colormap, so only the tumour classes are tinted.
        ax.imshow(labels, cmap=cmap, norm=norm, alpha=state.opacity, aspect=state.aspect(),
                  interpolation="nearest")
    ax.set_title(title if title is not None else _MODALITY_TITLES.get(state.modality, state.modality),
                 fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if show_orientation:
        left, right, top, bottom = state.orientation_labels()
        style = dict(color="white", fontsize=9, fontweight="bold", transform=ax.transAxes)
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.98, top, ha="center", va="top", **style)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _new_figure(n_axes, width_per_axes=3.8):
    # A Figure made without pyplot is not registered with the inline backend, so it is shown
    # exactly once: where the code displays it (no duplicate at the end of the cell).
    from matplotlib.figure import Figure

    # At least 5 inches wide so the three-entry legend fits under a single view.
    figure = Figure(figsize=(max(5.0, width_per_axes * n_axes), 4.4), layout="constrained")
    axes = figure.subplots(1, n_axes, squeeze=False)[0]
    return figure, list(axes)


def _legend_html():
    """The class legend as HTML swatches in the report's colours."""
    items = []
    for code in sorted(CLASS_NAMES):
        if code == 0:
            continue
        r, g, b = (int(round(255 * c)) for c in CLASS_COLORS[code])
        items.append(
            f'<span style="display:inline-block;width:12px;height:12px;'
            f'background:rgb({r},{g},{b});margin:0 4px 0 12px;vertical-align:middle"></span>'
            f"{code}: {CLASS_NAMES[code]}"
        )
    return "<div>" + "".join(items) + "</div>"


class _SliceViewerBase:
    """The controls shared by both viewers; subclasses say how to draw."""

    n_axes = 1

    def __init__(self, state):
        import ipywidgets as widgets

        self.state = state
        self.redraw_count = 0
        self._syncing = False
        self.plane_dropdown = widgets.Dropdown(options=list(PLANES), value=state.plane, description="plane")
        self.slice_slider = widgets.IntSlider(
            value=state.slice_index, min=0, max=state.n_slices - 1, description="slice",
            continuous_update=False,  # redraw on release: each redraw takes a tenth of a second
        )
        self.modality_dropdown = widgets.Dropdown(
            options=list(state.images), value=state.modality, description="modality"
        )
        self.overlay_checkbox = widgets.Checkbox(value=state.overlay, description="labels",
                                                 indent=False)
        self.opacity_slider = widgets.FloatSlider(
            value=state.opacity, min=0.0, max=1.0, step=0.05, description="opacity",
            continuous_update=False,
        )
        self.legend = widgets.HTML(_legend_html())
        self.output = widgets.Output()

        self.plane_dropdown.observe(self._on_plane, names="value")
        self.slice_slider.observe(self._on_slice, names="value")
        self.modality_dropdown.observe(self._on_modality, names="value")
        self.overlay_checkbox.observe(self._on_overlay, names="value")
        self.opacity_slider.observe(self._on_opacity, names="value")

        self.widget = widgets.VBox([
            widgets.HBox([self.plane_dropdown, self.modality_dropdown, self.overlay_checkbox]),
            widgets.HBox([self.slice_slider, self.opacity_slider]),
            self.legend,
            self.output,
        ])
        self.redraw()

    # -- callbacks: write into the state, then redraw -------------------------------------------
    # Each control writes one field of the state. While `_sync_controls` copies the state
    # back into the controls, the callbacks stand still (no write-back, no extra redraw).
    def _on_plane(self, change):
        if not self._syncing:
            self.state.set_plane(change["new"])
            self.redraw()

    def _on_slice(self, change):
        if not self._syncing:
            self.state.slice_index = change["new"]
            self.redraw()

    def _on_modality(self, change):
        if not self._syncing:
            self.state.modality = change["new"]
            self.redraw()

    def _on_overlay(self, change):
        if not self._syncing:
            self.state.overlay = change["new"]
            self.redraw()

    def _on_opacity(self, change):
        if not self._syncing:
            self.state.opacity = change["new"]
            self.redraw()

    def _sync_controls(self):
        """Show the state in the controls (after code changed the state directly)."""
        self._syncing = True
        try:
            self.plane_dropdown.value = self.state.plane
            # The slider's range depends on the plane: set the maximum before the value.
            self.slice_slider.max = self.state.n_slices - 1
            self.slice_slider.value = self.state.slice_index
            self.modality_dropdown.value = self.state.modality
            self.overlay_checkbox.value = self.state.overlay
            self.opacity_slider.value = self.state.opacity
        finally:
            self._syncing = False

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self, axes):
        raise NotImplementedError

    def static_figure(self):
        """The current view as a matplotlib Figure, for places without widgets.

        Returns
        -------
        matplotlib.figure.Figure
            Displayed by Jupyter when it is a cell's last expression; save it with
            ``figure.savefig(path)``.
        """
        figure, axes = _new_figure(self.n_axes)
        self._draw(axes)
        figure.suptitle(self._figure_title(), fontsize=11)
        return figure

    def _figure_title(self):
        name = f"{self.state.name}: " if self.state.name else ""
        return name + self.state.slice_title()

    def redraw(self):
        """Bring the controls in line with `state` and draw the view into the output widget.

        Call it after changing `state` from code; the controls call it themselves.
        """
        import io

        from IPython.display import Image, display

        self._sync_controls()
        figure = self.static_figure()
        # Send a PNG rather than the Figure: it shows the same whatever matplotlib backend
        # the kernel runs (inline, Agg, ipympl), in Jupyter, Colab and Binder alike.
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        with self.output:
            self.output.clear_output(wait=True)
            display(Image(data=buffer.getvalue(), format="png"))
        self.redraw_count += 1

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # Front ends without widgets (nbconvert HTML, GitHub, a terminal) show text/plain:
        # say what would be here instead of printing the widget tree.
        bundle["text/plain"] = (
            f"{type(self).__name__} of {self.state.name or 'a case'}: an interactive view "
            "(needs Jupyter with ipywidgets and a running kernel)"
        )
        return bundle


class CaseViewer(_SliceViewerBase):
    """Browse one case: plane, slice, modality, label overlay and its opacity.

    Parameters
    ----------
    case_data : gliseg_nb.data.CaseData or ViewerState
        A loaded case (`gliseg_nb.data.load_case`), or a ready state.
    **options
        `ViewerState` fields for the start (``plane="coronal"``, ``opacity=0.3``, ...).

    Attributes
    ----------
    state : ViewerState
        What is shown; change it and call `redraw`, or use the controls.
    widget : ipywidgets.VBox
        The controls and the picture; displaying the viewer displays this.

    Examples
    --------
    >>> viewer = CaseViewer(load_case(find_cases(data_dir)[0]))  # doctest: +SKIP
    >>> viewer                                    # the interactive view   # doctest: +SKIP
    >>> viewer.static_figure()                    # the same view, as a picture  # doctest: +SKIP
    """

    n_axes = 1

    def __init__(self, case_data, **options):
        state = case_data if isinstance(case_data, ViewerState) else ViewerState.from_case(case_data, **options)
        super().__init__(state)

    def _draw(self, axes):
        draw_view(axes[0], self.state)
        if self.state.labels is not None:
            _add_legend(axes[0].figure)


class ComparisonViewer(_SliceViewerBase):
    """Ground truth and prediction side by side, moving together.

    Parameters
    ----------
    case_data : gliseg_nb.data.CaseData or ViewerState
        The loaded case with its ground truth labels (or a state holding both volumes).
    prediction : numpy.ndarray or None
        Predicted internal labels 0-3 in the same array order as ``case_data.labels``.
        Ignored when `case_data` is a ViewerState.
    **options
        `ViewerState` fields for the start.
    """

    n_axes = 2

    def __init__(self, case_data, prediction=None, **options):
        if isinstance(case_data, ViewerState):
            state = case_data
        else:
            if prediction is None:
                raise ValueError("ComparisonViewer needs a prediction")
            state = ViewerState.from_case(case_data, prediction=prediction, **options)
        if state.prediction is None:
            raise ValueError("ComparisonViewer needs a state with a prediction")
        super().__init__(state)

    def _draw(self, axes):
        draw_view(axes[0], self.state, source="labels", title="ground truth")
        draw_view(axes[1], self.state, source="prediction", title="prediction")
        _add_legend(axes[0].figure)


def _add_legend(figure):
    from .labels import legend_handles

    figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3, fontsize=8,
                  frameon=False)
