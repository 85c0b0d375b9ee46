"""Interactive slice viewers for one case, and for a ground truth beside a prediction.

Three layers, kept apart on purpose:

* `ViewerState` is a plain dataclass with no matplotlib and no widgets in it. It knows the
  3-D cursor (the point every plane goes through), the plane the slice slider steps
  through, the modality, whether the labels are drawn and how opaquely; it cuts 2-D slices
  out of the volumes, turns a position in a plane back into a 3-D point, steps slices and
  reads the voxel under the cursor. Tests (and curious learners) drive it directly.
* `plane_picture` draws: it turns one plane of the state into an RGB array (grey image,
  labels blended over it, crosshair), at any size. The widgets show that array as a PNG;
  `static_figure` puts the same arrays into a matplotlib figure with titles and a legend.
* `CaseViewer` (three linked planes) and `ComparisonViewer` (ground truth beside the
  prediction) are a thin ipywidgets layer: each control writes into the state, then the
  pictures are redrawn. Clicks and key presses on a picture come from ipyevents, which
  works with ipywidgets 7 (Colab) and 8. No ipympl and no matplotlib backend is involved,
  so a redraw takes milliseconds and the slice slider updates while it is dragged.
  Displaying a viewer also sends a PNG of its current view, which is what static pages
  (nbconvert HTML, GitHub's notebook preview) show instead of dead controls.

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
from .labels import CLASS_COLORS, CLASS_NAMES, MODALITIES, MODALITY_TITLES
from .orientation import DISPLAY_CONVENTIONS as CONVENTIONS
from .orientation import PLANES, display_slice, flip_to_ras, ras_flips

__all__ = [
    "PLANES",
    "CONVENTIONS",
    "KEY_STEPS",
    "ViewerState",
    "plane_picture",
    "draw_view",
    "CaseViewer",
    "ComparisonViewer",
    "view_3d",
]

#: Volume axes shown along the (rows, columns) of each plane's picture.
_PLANE_AXES = {"axial": (1, 0), "coronal": (2, 0), "sagittal": (2, 1)}

#: Keys that step the slice of the picture under the mouse, and by how many slices.
KEY_STEPS = {
    "ArrowUp": 1, "ArrowRight": 1, "k": 1, "PageUp": 10,
    "ArrowDown": -1, "ArrowLeft": -1, "j": -1, "PageDown": -10,
}

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
    flips : tuple of bool, default=(False, False, False)
        Which voxel axes `from_case` reversed to make the arrays RAS+, so the readout can
        name the voxel as it is indexed in the file.
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
    flips: tuple = (False, False, False)
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
            flips=tuple(flips) if flips is not None else (False, False, False),
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

    def n_slices_in(self, plane):
        """Number of slices in `plane` (any of `PLANES`)."""
        return self.shape[PLANES[_check_plane(plane)]]

    def slice_index_in(self, plane):
        """Index of the slice `plane` shows (the cursor's coordinate along its axis)."""
        return self.cursor[PLANES[_check_plane(plane)]]

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
    # Every picture is a slice through the cursor, transposed and flipped so that anterior
    # (axial) or superior (coronal, sagittal) is at the top; `cursor_in_plane` and
    # `move_to` are the same mapping and its inverse, for the crosshair and for clicks.
    def _columns_reversed(self, plane):
        # As `orientation.display_slice` draws them: radiological axial and coronal views.
        return self.convention == "radiological" and plane in ("axial", "coronal")

    def _cut(self, volume, plane=None):
        """One slice of `volume` through the cursor, as (rows, columns) for display."""
        plane = self.plane if plane is None else _check_plane(plane)
        index = self.cursor[PLANES[plane]]
        if plane == "axial":
            cut = volume[:, :, index]
        elif plane == "coronal":
            cut = volume[:, index, :]
        else:
            cut = volume[index, :, :]
        return display_slice(cut, plane, self.convention)

    def image_slice(self, modality=None, plane=None):
        """The slice of an image through the cursor, as a (rows, columns) array for display.

        Parameters
        ----------
        modality : str or None, default=None
            Which image; None means the current `modality`.
        plane : str or None, default=None
            Which plane; None means the current `plane`.

        Returns
        -------
        numpy.ndarray
            Axial: (Y, X); coronal: (Z, X); sagittal: (Z, Y).
        """
        modality = self.modality if modality is None else modality
        if modality not in self.images:
            raise ValueError(f"modality must be one of {list(self.images)}, got {modality!r}")
        return self._cut(self.images[modality], plane)

    def label_slice(self, source="labels", plane=None):
        """The slice of the labels (or of the prediction), oriented like `image_slice`.

        Parameters
        ----------
        source : {"labels", "prediction"}, default="labels"
            The ground truth or the prediction.
        plane : str or None, default=None
            Which plane; None means the current `plane`.

        Returns
        -------
        numpy.ndarray or None
            None when that volume was not given.
        """
        volume = self._label_volume(source)
        return None if volume is None else self._cut(volume, plane)

    def _label_volume(self, source):
        if source not in ("labels", "prediction"):
            raise ValueError(f"source must be 'labels' or 'prediction', got {source!r}")
        return getattr(self, source)

    def slice_shape(self, plane=None):
        """(rows, columns) of the pictures of `plane` (None: the current plane)."""
        plane = self.plane if plane is None else _check_plane(plane)
        row_axis, column_axis = _PLANE_AXES[plane]
        return (self.shape[row_axis], self.shape[column_axis])

    def pixel_size_mm(self, plane=None):
        """(height, width) in millimetres of one displayed pixel of `plane`."""
        plane = self.plane if plane is None else _check_plane(plane)
        row_axis, column_axis = _PLANE_AXES[plane]
        return (float(self.zooms[row_axis]), float(self.zooms[column_axis]))

    def aspect(self, plane=None):
        """Height/width of one displayed pixel (for ``imshow(aspect=...)``); None: current plane."""
        height, width = self.pixel_size_mm(plane)
        return height / width

    def orientation_labels(self, plane=None):
        """Anatomical letters at the (left, right, top, bottom) edges of a plane's picture."""
        plane = self.plane if plane is None else _check_plane(plane)
        if plane == "sagittal":
            return ("P", "A", "S", "I")
        left, right = ("L", "R") if self.convention == "neurological" else ("R", "L")
        top, bottom = ("A", "P") if plane == "axial" else ("S", "I")
        return (left, right, top, bottom)

    # -- the cursor seen from a plane, clicks and keys ------------------------------------------
    def cursor_in_plane(self, plane=None):
        """Where the cursor is in a plane's picture, as (row, column).

        Parameters
        ----------
        plane : str or None, default=None
            Which plane; None means the current `plane`.

        Returns
        -------
        tuple of int
            Indices into `image_slice` of that plane: ``image_slice(plane=p)[row, column]``
            is the voxel under the cursor.
        """
        plane = self.plane if plane is None else _check_plane(plane)
        row_axis, column_axis = _PLANE_AXES[plane]
        n_rows, n_columns = self.slice_shape(plane)
        row = n_rows - 1 - self.cursor[row_axis]
        column = self.cursor[column_axis]
        if self._columns_reversed(plane):
            column = n_columns - 1 - column
        return (row, column)

    def move_to(self, plane, row, column):
        """Move the cursor to a (row, column) of a plane's picture (what a click does).

        The slice that `plane` shows stays the same; the two other coordinates change, so
        the other planes now go through the clicked point. Positions outside the picture
        are clamped to its edge.

        Parameters
        ----------
        plane : {"axial", "coronal", "sagittal"}
            The picture that was clicked.
        row, column : int
            Position in that picture, in its pixels (the indices of `image_slice`).

        Returns
        -------
        tuple of int
            The new cursor (x, y, z).
        """
        plane = _check_plane(plane)
        row_axis, column_axis = _PLANE_AXES[plane]
        n_rows, n_columns = self.slice_shape(plane)
        row = int(np.clip(int(row), 0, n_rows - 1))
        column = int(np.clip(int(column), 0, n_columns - 1))
        if self._columns_reversed(plane):
            column = n_columns - 1 - column
        point = list(self.cursor)
        point[row_axis] = n_rows - 1 - row
        point[column_axis] = column
        self.cursor = tuple(point)
        return self.cursor

    def step(self, delta, plane=None):
        """Move `delta` slices through a plane (what the arrow keys do), stopping at the ends.

        Parameters
        ----------
        delta : int
            Slices to move; positive goes up the axis (to the right, anterior, superior).
        plane : str or None, default=None
            Which plane's slice changes; None means the current `plane`.

        Returns
        -------
        int
            The new slice index in that plane.
        """
        plane = self.plane if plane is None else _check_plane(plane)
        point = list(self.cursor)
        point[PLANES[plane]] += int(delta)
        self.cursor = tuple(point)  # clamped on assignment
        return self.cursor[PLANES[plane]]

    # -- what is under the cursor -----------------------------------------------------------------
    def voxel_values(self):
        """The intensities and the labels of the voxel under the cursor.

        Returns
        -------
        dict
            ``"images"``: modality -> float intensity; ``"labels"`` and ``"prediction"``:
            the internal label (int), or None when that volume was not given.
        """
        point = self.cursor
        values = {"images": {name: float(volume[point]) for name, volume in self.images.items()}}
        for source in ("labels", "prediction"):
            volume = getattr(self, source)
            values[source] = None if volume is None else int(volume[point])
        return values

    def file_voxel(self):
        """The cursor as a voxel index (i, j, k) of the case's files (undoing the RAS flips)."""
        index = [n - 1 - p if flip else p for p, n, flip in zip(self.cursor, self.shape, self.flips)]
        # Only a z axis left unflipped keeps the loaded slices' numbering (see `from_case`).
        index[2] += self.axial_offset
        return tuple(int(i) for i in index)

    def readout(self):
        """One line naming the voxel under the cursor, its intensities and its labels."""
        from .labels import CLASS_NAMES

        values = self.voxel_values()
        parts = [f"voxel (i, j, k) = {self.file_voxel()}"]
        parts.append(", ".join(
            f"{_MODALITY_TITLES.get(name, name).split(' ')[0]} {value:.4g}"
            for name, value in values["images"].items()
        ))
        for source, what in (("labels", "label"), ("prediction", "predicted")):
            code = values[source]
            if code is not None:
                parts.append(f"{what} {code} ({CLASS_NAMES.get(code, 'unknown')})")
        return " | ".join(parts)

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


def _check_plane(plane):
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {list(PLANES)}, got {plane!r}")
    return plane


def _modality_sort_key(name):
    return (_MODALITY_ORDER.index(name) if name in _MODALITY_ORDER else len(_MODALITY_ORDER), name)




# -- drawing: one plane of the state as an RGB picture (no matplotlib) -------------------------
#: Colour of the crosshair: cyan, unlike any class colour (red, green, yellow).
CROSSHAIR_COLOR = (0.0, 0.8, 1.0)


def _label_rgb_table():
    table = np.zeros((256, 3), np.float32)
    for code, colour in CLASS_COLORS.items():
        table[code] = colour
    return table


def plane_picture(state, plane=None, source="labels", pixels_per_mm=1.0, crosshair=True):
    """Draw one plane of the state as an RGB picture: grey image, labels, crosshair.

    This is the viewers' only drawing code: the widgets show its arrays as PNGs, and
    `draw_view` puts them into matplotlib axes.

    Parameters
    ----------
    state : ViewerState
        What to draw: the cursor, modality, overlay and opacity, convention.
    plane : str or None, default=None
        Which plane; None means ``state.plane``.
    source : {"labels", "prediction"}, default="labels"
        Which label volume is blended over the image (when ``state.overlay`` is on).
    pixels_per_mm : float, default=1.0
        Size of the picture: screen pixels per millimetre (voxels are repeated, never
        smoothed, so every label boundary stays sharp).
    crosshair : bool, default=True
        Draw a crosshair through the cursor, with a gap that leaves its voxel visible.

    Returns
    -------
    numpy.ndarray
        uint8 array (height, width, 3).
    """
    plane = state.plane if plane is None else _check_plane(plane)
    low, high = state.display_range()
    grey = np.clip((state.image_slice(plane=plane).astype(np.float32) - low) / (high - low), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    labels = state.label_slice(source, plane)
    if state.overlay and labels is not None and state.opacity > 0:
        codes = np.clip(labels, 0, 255).astype(np.intp)
        tumour = codes > 0
        # Class 0 stays untouched: only the tumour classes are tinted.
        rgb[tumour] = ((1.0 - state.opacity) * rgb[tumour]
                       + state.opacity * _label_rgb_table()[codes[tumour]])

    # Nearest-neighbour resampling to the screen size, the voxel size giving the aspect.
    (n_rows, n_columns), (row_mm, column_mm) = state.slice_shape(plane), state.pixel_size_mm(plane)
    height = max(1, int(round(n_rows * row_mm * pixels_per_mm)))
    width = max(1, int(round(n_columns * column_mm * pixels_per_mm)))
    rows = _screen_to_slice(np.arange(height), height, n_rows)
    columns = _screen_to_slice(np.arange(width), width, n_columns)
    picture = (rgb[rows][:, columns] * 255 + 0.5).astype(np.uint8)

    if crosshair:
        row, column = state.cursor_in_plane(plane)
        # The centre of the cursor's voxel on screen, and a gap of a bit more than a voxel.
        y = int((row + 0.5) * height / n_rows)
        x = int((column + 0.5) * width / n_columns)
        gap_y = max(3, int(height / n_rows))
        gap_x = max(3, int(width / n_columns))
        colour = np.array(CROSSHAIR_COLOR) * 255
        horizontal = np.r_[0:max(0, x - gap_x), min(width, x + gap_x + 1):width]
        vertical = np.r_[0:max(0, y - gap_y), min(height, y + gap_y + 1):height]
        picture[y, horizontal] = (0.3 * picture[y, horizontal] + 0.7 * colour).astype(np.uint8)
        picture[vertical, x] = (0.3 * picture[vertical, x] + 0.7 * colour).astype(np.uint8)
    return picture


def _screen_to_slice(pixels, n_pixels, n_cells):
    """Which slice row (or column) each screen pixel shows, for `n_pixels` over `n_cells`."""
    cells = ((np.asarray(pixels, dtype=np.float64) + 0.5) * n_cells / n_pixels).astype(np.intp)
    return np.clip(cells, 0, n_cells - 1)


def _png_bytes(picture):
    """PNG-encode an RGB uint8 array (fast settings: it is redrawn while a slider moves)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _plane_title(state, plane, short=False):
    """"axial  z = 77 / 155" (short: "z 77/155", under a heading naming the plane)."""
    letter = "xyz"[PLANES[plane]]
    if short:
        return f"{letter} {state.slice_index_in(plane)}/{state.n_slices_in(plane)}"
    return f"{plane}  {letter} = {state.slice_index_in(plane)} / {state.n_slices_in(plane)}"


# -- matplotlib: the same pictures, framed with titles and a legend -----------------------------
def draw_view(ax, state, source="labels", title=None, show_orientation=True, plane=None,
              crosshair=False, pixels_per_mm=2.0):
    """Draw a plane of the state, with its labels if the overlay is on, into `ax`.

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
    plane : str or None, default=None
        Which plane; None means ``state.plane``.
    crosshair : bool, default=False
        Draw the crosshair through the cursor (see `plane_picture`).
    pixels_per_mm : float, default=2.0
        Resolution of the picture; the default keeps the crosshair thin in a saved figure.
    """
    plane = state.plane if plane is None else _check_plane(plane)
    ax.clear()
    ax.imshow(plane_picture(state, plane, source, pixels_per_mm=pixels_per_mm, crosshair=crosshair),
              interpolation="nearest")
    ax.set_title(title if title is not None else _MODALITY_TITLES.get(state.modality, state.modality),
                 fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if show_orientation:
        left, right, top, bottom = state.orientation_labels(plane)
        style = dict(color="white", fontsize=9, fontweight="bold", transform=ax.transAxes)
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.98, top, ha="center", va="top", **style)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def _figure(state, panels, title, legend, pixels_per_mm=2.0):
    """A matplotlib Figure of `panels`, a list of (plane, source, title, crosshair)."""
    # A Figure made without pyplot is not registered with the inline backend, so it is shown
    # exactly once: where the code displays it (no duplicate at the end of the cell).
    from matplotlib.figure import Figure

    from .labels import legend_handles

    # Panels as wide as their planes (in mm), so a coronal view is not squeezed. The figure
    # is at least 6.4 inches wide: the three-entry legend fits under a single view at 80 dpi.
    widths = [state.slice_shape(plane)[1] * state.pixel_size_mm(plane)[1] for plane, *_ in panels]
    figure = Figure(figsize=(max(6.4, 3.6 * len(panels)), 4.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    for ax, (plane, source, panel_title, crosshair) in zip(axes, panels):
        draw_view(ax, state, source=source, title=panel_title, plane=plane, crosshair=crosshair,
                  pixels_per_mm=pixels_per_mm)
    figure.suptitle(title, fontsize=11)
    if legend:
        figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3, fontsize=8,
                      frameon=False)
    return figure


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


# -- the widgets: controls write into the state, pictures are redrawn ---------------------------
#: Width in screen pixels the pictures fill together: JupyterLab's output area at its default
#: width is about 960 px; narrower front ends (Colab's side panel) shrink the pictures.
DEFAULT_WIDTH = 930

_HELP = ("Click a picture to move the cursor there. With the mouse over a picture, "
         "&larr;/&rarr; (or j/k) step one slice through it, PgUp/PgDn ten.")


#: ipyevents' wheel enables its extension for the classic Notebook (6.x, where ipywidgets 7
#: users are outside Colab) but does not install its files: the page then fails to load it,
#: the pictures show and the controls work, but clicks and keys never reach the kernel.
_CLASSIC_NOTEBOOK_HINT = (
    "<b>Clicks and keys do nothing in the classic Notebook?</b> Install ipyevents' extension "
    "for it: <code>jupyter nbextension install --py --sys-prefix ipyevents</code>, then reload "
    "the page.")


def _classic_notebook_lacks_ipyevents():
    """True when the classic Notebook (< 7) is installed but ipyevents' files for it are not.

    Only what lies on disk is seen (the kernel cannot ask the page what it loaded): JupyterLab,
    Notebook 7 and Colab load ipyevents another way and are never flagged.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("notebook").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    if major >= 7:
        return False
    from pathlib import Path

    from jupyter_core.paths import jupyter_path

    return not any((Path(folder) / "ipyevents" / "extension.js").is_file()
                   for folder in jupyter_path("nbextensions"))


class _Panel:
    """One picture of a viewer: which plane (None: the current one) and which labels."""

    def __init__(self, widgets, plane, source, heading):
        self.plane = plane
        self.source = source
        self.heading = heading
        self.title = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%",
                                                                        height="auto"))
        self.box = widgets.VBox([self.title, self.image],
                                layout=widgets.Layout(border="2px solid transparent"))
        self.picture_shape = None   # (height, width) of the last picture sent
        self.events = []


class _SliceViewerBase:
    """The controls, the pictures and the event handling shared by both viewers."""

    def _panel_layout(self):
        """(plane or None, source, heading) for each picture; None follows the plane control."""
        raise NotImplementedError

    def __init__(self, state, width=DEFAULT_WIDTH):
        import ipywidgets as widgets

        self.state = state
        self.width = int(width)
        self.redraw_count = 0
        self._syncing = False
        self.plane_dropdown = widgets.Dropdown(options=list(PLANES), value=state.plane,
                                               description="plane")
        # A redraw takes tens of milliseconds (numpy and PNG, no matplotlib), so the pictures
        # follow a drag. The front end never queues a backlog: while the kernel is busy it
        # keeps only the slider's latest value. The track spans the viewer's width, a few
        # pixels of drag per slice.
        self.slice_slider = widgets.IntSlider(
            value=state.slice_index, min=0, max=state.n_slices - 1, description="slice",
            continuous_update=True, layout=widgets.Layout(width=f"{self.width}px"),
        )
        self.modality_dropdown = widgets.Dropdown(options=list(state.images), value=state.modality,
                                                  description="modality")
        self.overlay_checkbox = widgets.Checkbox(value=state.overlay, description="labels",
                                                 indent=False)
        self.opacity_slider = widgets.FloatSlider(
            value=state.opacity, min=0.0, max=1.0, step=0.05, description="opacity",
            continuous_update=True,
        )
        self.legend = widgets.HTML(_legend_html())
        self.readout = widgets.HTML()
        self.panels = [_Panel(widgets, *spec) for spec in self._panel_layout()]

        self.plane_dropdown.observe(self._on_plane, names="value")
        self.slice_slider.observe(self._on_slice, names="value")
        self.modality_dropdown.observe(self._on_modality, names="value")
        self.overlay_checkbox.observe(self._on_overlay, names="value")
        self.opacity_slider.observe(self._on_opacity, names="value")
        self.events_available = self._watch_pictures()

        help_text = _HELP if self.events_available else (
            "Install ipyevents (pip install ipyevents) to click and step through the pictures.")
        if self.events_available and _classic_notebook_lacks_ipyevents():
            help_text += " " + _CLASSIC_NOTEBOOK_HINT
        self.widget = widgets.VBox([
            widgets.HBox([self.plane_dropdown, self.modality_dropdown, self.overlay_checkbox,
                          self.opacity_slider]),
            self.slice_slider,
            widgets.HBox([panel.box for panel in self.panels]),
            self.readout,
            self.legend,
            widgets.HTML(f'<span style="color:#666;font-size:90%">{help_text}</span>'),
        ])
        self.redraw()

    def _watch_pictures(self):
        """Listen to clicks and key presses on the pictures; False if ipyevents is missing."""
        try:
            from ipyevents import Event
        except ImportError:
            return False
        for panel in self.panels:
            click = Event(source=panel.image, watched_events=["click"])
            # Arrow keys would also scroll the page: keep them for the viewer while the
            # mouse is over a picture (ipyevents listens to keys only then).
            keys = Event(source=panel.image, watched_events=["keydown"],
                         prevent_default_action=True)
            click.on_dom_event(lambda event, panel=panel: self.handle_event(panel, event))
            keys.on_dom_event(lambda event, panel=panel: self.handle_event(panel, event))
            panel.events = [click, keys]
        return True

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

    def handle_event(self, panel, event):
        """Act on a browser event from a picture: a click moves the cursor, a key steps.

        The picture's plane becomes the current plane, so the slice slider follows it.

        Parameters
        ----------
        panel : _Panel
            The picture the event came from (one of `panels`).
        event : dict
            The ipyevents event: ``type`` "click" with ``dataX``/``dataY`` (position in
            the picture's own pixels), or "keydown" with ``key`` (see `KEY_STEPS`).

        Returns
        -------
        bool
            True when the event changed the view (and the pictures were redrawn).
        """
        plane = panel.plane or self.state.plane
        if event.get("type") == "click" and panel.picture_shape is not None:
            height, width = panel.picture_shape
            n_rows, n_columns = self.state.slice_shape(plane)
            row = int(_screen_to_slice(event["dataY"], height, n_rows))
            column = int(_screen_to_slice(event["dataX"], width, n_columns))
            self.state.plane = plane
            self.state.move_to(plane, row, column)
        elif event.get("type") == "keydown" and event.get("key") in KEY_STEPS:
            self.state.plane = plane
            self.state.step(KEY_STEPS[event["key"]])
        else:
            return False
        self.redraw()
        return True

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
    def _pixels_per_mm(self):
        """One scale for every picture, so that together they fill `width`."""
        planes = [panel.plane or self.state.plane for panel in self.panels]
        total_mm = sum(self.state.slice_shape(p)[1] * self.state.pixel_size_mm(p)[1] for p in planes)
        return (self.width - 8 * len(planes)) / total_mm   # 8 px: each picture's border

    def redraw(self):
        """Bring the controls in line with `state` and redraw the pictures and the readout.

        Call it after changing `state` from code; the controls call it themselves.
        """
        self._sync_controls()
        scale = self._pixels_per_mm()
        for panel in self.panels:
            plane = panel.plane or self.state.plane
            picture = plane_picture(self.state, plane, panel.source, pixels_per_mm=scale)
            panel.picture_shape = picture.shape[:2]
            panel.image.value = _png_bytes(picture)
            # Shown at its own size (one screen pixel per picture pixel, so a click lands
            # where it is aimed), shrunk only where the page is narrower.
            panel.image.layout.width = f"{picture.shape[1]}px"
            panel.box.layout.width = f"{picture.shape[1] + 8}px"
            current = plane == self.state.plane
            # A picture that follows the plane control names its plane.
            heading = panel.heading if panel.plane else f"{panel.heading}, {plane}"
            panel.title.value = (f"<b>{heading}</b> {_plane_title(self.state, plane, short=True)}"
                                 f" <span style='color:#888'>{self._edges(plane)}</span>")
            # The picture the slider and the keys act on is framed.
            panel.box.layout.border = "2px solid #00ccff" if current else "2px solid transparent"
        self.readout.value = f"<code>{self.state.readout()}</code>"
        self.redraw_count += 1

    def _edges(self, plane):
        left, right, top, _ = self.state.orientation_labels(plane)
        return f"{left}&harr;{right} {top}&uarr;"

    def _figure_panels(self, planes):
        raise NotImplementedError

    def static_figure(self, planes=None, pixels_per_mm=2.0):
        """The view as a matplotlib Figure, for places without widgets.

        Parameters
        ----------
        planes : str, list of str or None, default=None
            The planes to draw: None draws the current plane, "all" every plane the
            interactive view shows, or name them (``["axial", "coronal"]``). With more than
            one plane the crosshair marks the cursor.
        pixels_per_mm : float, default=2.0
            Resolution of each picture in the figure.

        Returns
        -------
        matplotlib.figure.Figure
            Displayed by Jupyter when it is a cell's last expression; save it with
            ``figure.savefig(path)``.
        """
        if planes is None:
            planes = [self.state.plane]
        elif planes == "all":
            planes = self._view_planes()
        elif isinstance(planes, str):
            planes = [planes]
        planes = [_check_plane(plane) for plane in planes]
        return _figure(self.state, self._figure_panels(planes), self._figure_title(),
                       legend=self.state.labels is not None or self.state.prediction is not None,
                       pixels_per_mm=pixels_per_mm)

    def _view_planes(self):
        return list(dict.fromkeys(panel.plane or self.state.plane for panel in self.panels))

    def _figure_title(self):
        name = f"{self.state.name}: " if self.state.name else ""
        return name + self.state.slice_title()

    def snapshot_png(self, dpi=72):
        """A PNG of the interactive view as it is now (what static pages show).

        Parameters
        ----------
        dpi : int, default=72
            Resolution of the picture.

        Returns
        -------
        bytes
        """
        import io

        # One pixel per millimetre is as sharp as a 72-dpi page shows, and twice as quick.
        figure = self.static_figure("all", pixels_per_mm=1.0)
        figure.suptitle(self._figure_title() + "\n" + self.state.readout(), fontsize=9)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Built by hand rather than asked of the widget: ipywidgets 7 (Colab) has no
        # Widget._repr_mimebundle_. Front ends with widgets show the widget view; static
        # pages (nbconvert HTML, GitHub) show the PNG of the current view; a terminal shows
        # the text.
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id,
            },
            "image/png": self.snapshot_png(),
            "text/plain": (
                f"{type(self).__name__} of {self.state.name or 'a case'}: an interactive view "
                "(needs Jupyter with ipywidgets and a running kernel)"
            ),
        }


class CaseViewer(_SliceViewerBase):
    """Browse one case in three linked planes: axial, coronal and sagittal.

    The three pictures go through one 3-D point, marked by a crosshair. Click a picture to
    move that point; with the mouse over a picture, the arrow keys (or j/k) step through
    its slices. The plane control chooses the picture the slice slider moves through; the
    readout under the pictures gives the voxel's intensities and label.

    Parameters
    ----------
    case_data : gliseg_nb.data.CaseData or ViewerState
        A loaded case (`gliseg_nb.data.load_case`), or a ready state.
    width : int, default=930
        Width in screen pixels that the three pictures fill together.
    **options
        `ViewerState` fields for the start (``plane="coronal"``, ``opacity=0.3``, ...).

    Attributes
    ----------
    state : ViewerState
        What is shown; change it and call `redraw`, or use the controls.
    widget : ipywidgets.VBox
        The controls and the pictures; displaying the viewer displays this.

    Examples
    --------
    >>> viewer = CaseViewer(load_case(find_cases(data_dir)[0]))  # doctest: +SKIP
    >>> viewer                                    # the interactive view   # doctest: +SKIP
    >>> viewer.static_figure()                    # the current plane, as a picture  # doctest: +SKIP
    """

    def __init__(self, case_data, width=DEFAULT_WIDTH, **options):
        state = case_data if isinstance(case_data, ViewerState) else ViewerState.from_case(case_data, **options)
        super().__init__(state, width=width)

    def _panel_layout(self):
        return [(plane, "labels", plane) for plane in PLANES]

    def _figure_panels(self, planes):
        crosshair = len(planes) > 1
        return [(plane, "labels", _plane_title(self.state, plane) if crosshair
                 else _MODALITY_TITLES.get(self.state.modality, self.state.modality), crosshair)
                for plane in planes]


class ComparisonViewer(_SliceViewerBase):
    """Ground truth and prediction side by side, moving together.

    Both pictures show the current plane; click either to move the cursor, step with the
    arrow keys over either, and read both labels of the voxel under the cursor.

    Parameters
    ----------
    case_data : gliseg_nb.data.CaseData or ViewerState
        The loaded case with its ground truth labels (or a state holding both volumes).
    prediction : numpy.ndarray or None
        Predicted internal labels 0-3 in the same array order as ``case_data.labels``.
        Ignored when `case_data` is a ViewerState.
    width : int, default=930
        Width in screen pixels that the two pictures fill together.
    **options
        `ViewerState` fields for the start.
    """

    def __init__(self, case_data, prediction=None, width=DEFAULT_WIDTH, **options):
        if isinstance(case_data, ViewerState):
            state = case_data
        else:
            if prediction is None:
                raise ValueError("ComparisonViewer needs a prediction")
            state = ViewerState.from_case(case_data, prediction=prediction, **options)
        if state.prediction is None:
            raise ValueError("ComparisonViewer needs a state with a prediction")
        super().__init__(state, width=width)

    def _panel_layout(self):
        return [(None, "labels", "ground truth"), (None, "prediction", "prediction")]

    def _figure_panels(self, planes):
        crosshair = len(planes) > 1
        return [(plane, source, title if len(planes) == 1 else f"{title}, {plane}", crosshair)
                for plane in planes
                for source, title in (("labels", "ground truth"), ("prediction", "prediction"))]


# -- a 3-D look with NiiVue (optional: pip install "gliseg-nb[3d]") ------------------------------
def view_3d(case_data, prediction=None, modality=None, opacity=0.5, height=480):
    """A NiiVue (WebGL) view of a case with its labels and, optionally, a prediction.

    NiiVue draws the three planes and a 3-D rendering in the browser, with its own
    crosshair, zoom and contrast controls; it needs no network once installed. It comes
    from the optional package ipyniivue (``pip install "gliseg-nb[3d]"``), which installs
    without replacing Colab's ipywidgets, ipykernel or IPython. The course's own viewers
    do not need it.

    Parameters
    ----------
    case_data : gliseg_nb.data.CaseData
        The loaded case: its ``images``, ``labels``, ``affine`` and ``slices`` are used.
    prediction : numpy.ndarray or None, default=None
        Predicted internal labels 0-3 in the same array order as ``case_data.labels``,
        drawn as a second label layer (hidden at first: raise its opacity to compare).
    modality : str or None, default=None
        Image underneath; None picks FLAIR if present, else the first.
    opacity : float, default=0.5
        Opacity of the ground truth layer.
    height : int, default=480
        Height of the view in screen pixels.

    Returns
    -------
    ipyniivue.NiiVue
        The widget; display it (make it a cell's last expression).

    Raises
    ------
    ModuleNotFoundError
        When ipyniivue is not installed; the message says what to install.
    """
    try:
        from ipyniivue import NiiVue
    except ImportError:
        raise ModuleNotFoundError(
            "view_3d needs the optional package ipyniivue: pip install 'gliseg-nb[3d]' "
            "(or pip install ipyniivue), then restart the kernel"
        ) from None
    import nibabel as nib

    images = case_data.images
    modality = modality or ("flair" if "flair" in images else next(iter(images)))
    if modality not in images:
        raise ValueError(f"modality must be one of {list(images)}, got {modality!r}")
    affine = np.asarray(case_data.affine, dtype=np.float64).copy()
    slices = getattr(case_data, "slices", None)
    if isinstance(slices, slice) and slices.start:
        # The arrays start at a later axial slice than the file: move the origin with them.
        affine[:3, 3] += affine[:3, 2] * slices.start

    def nifti_bytes(volume, dtype):
        return nib.Nifti1Image(np.asarray(volume, dtype=dtype), affine).to_bytes()

    viewer = NiiVue(height=int(height))
    layers = [{"data": nifti_bytes(images[modality], np.float32), "name": f"{modality}.nii",
               "colormap": "gray"}]
    label_layers = [("labels", case_data.labels, opacity), ("prediction", prediction, 0.0)]
    for name, volume, layer_opacity in label_layers:
        if volume is not None:
            layers.append({"data": nifti_bytes(volume, np.uint8), "name": f"{name}.nii",
                           "opacity": float(layer_opacity)})
    viewer.load_volumes(layers)
    colours = [CLASS_COLORS[code] for code in sorted(CLASS_COLORS)]
    lut = {
        "R": [int(255 * c[0]) for c in colours],
        "G": [int(255 * c[1]) for c in colours],
        "B": [int(255 * c[2]) for c in colours],
        "A": [0] + [255] * (len(colours) - 1),   # class 0 transparent
        "I": list(range(len(colours))),
        "labels": [CLASS_NAMES[code] for code in sorted(CLASS_COLORS)],
    }
    for volume in viewer.volumes[1:]:
        volume.set_colormap_label(lut)
    return viewer
