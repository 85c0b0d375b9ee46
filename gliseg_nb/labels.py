"""Label conventions: the report's classes, each BraTS release's labels, regions, colours.

Every other module asks this one what a label means, and what the modalities and the
dataset layouts are called (`MODALITIES`, `LAYOUTS`). Internally the package always uses
the report's four classes:

====  ===================================  ==========
code  class                                colour
====  ===================================  ==========
0     not tumour                           (none)
1     necrotic / non-enhancing tumour core red
2     peritumoral edema                    green
3     enhancing tumour                     yellow
====  ===================================  ==========

On disk each release stores them differently: BraTS 2019-2021 write the enhancing tumour
as 4 (label 3 was retired in 2017), BraTS 2023 writes it as 3 again, and the Medical
Segmentation Decathlon (Task01) numbers the classes in another order altogether.

BraTS scores *regions*, not classes. The regions nest:

* whole tumour ``WT`` = 1 + 2 + 3 (everything abnormal, edema included);
* tumour core ``TC`` = 1 + 3 (what a surgeon removes: the enhancing part **is** in it);
* enhancing tumour ``ET`` = 3.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError

__all__ = [
    "MODALITIES",
    "MODALITY_TITLES",
    "LAYOUTS",
    "CLASS_NAMES",
    "CLASS_COLORS",
    "REGIONS",
    "REGION_NAMES",
    "REGION_COLORS",
    "CONVENTIONS",
    "LAYOUT_CONVENTION",
    "convention_for_layout",
    "to_internal",
    "from_internal",
    "region_mask",
    "region_masks",
    "labels_to_regions",
    "regions_to_labels",
    "decode_outputs",
    "label_colormap",
    "legend_handles",
]

#: The four MRI contrasts, under the names the package uses everywhere (whatever a release
#: calls them in its file names: BraTS 2023's t2f, t1n, t1c, t2w are these four).
MODALITIES = ("flair", "t1", "t1ce", "t2")

#: How figures and viewers title each modality.
MODALITY_TITLES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce (contrast)", "t2": "T2"}

#: Every dataset layout `gliseg_nb.data.find_cases` recognises (``Case.layout``).
LAYOUTS = ("brats2019", "brats2020-kaggle", "brats2020", "brats2021", "brats2023-gli", "msd")

#: The report's classes (``SEGMENT_CLASSES`` in its source notebook), by internal code.
CLASS_NAMES = {
    0: "not tumour",
    1: "necrotic / non-enhancing core",
    2: "edema",
    3: "enhancing tumour",
}

#: One RGB colour per class, as in the report's figure 2.2 (background is not drawn).
CLASS_COLORS = {
    0: (0.0, 0.0, 0.0),
    1: (0.90, 0.10, 0.10),  # necrotic core: red
    2: (0.15, 0.75, 0.20),  # edema: green
    3: (1.00, 0.90, 0.10),  # enhancing: yellow
}

#: BraTS evaluation regions as sets of internal classes.
REGIONS = {
    "WT": (1, 2, 3),
    "TC": (1, 3),
    "ET": (3,),
}

REGION_NAMES = {
    "WT": "whole tumour",
    "TC": "tumour core",
    "ET": "enhancing tumour",
}

#: One colour per region for charts of region scores: the colour of the class that the
#: region adds to the next region inside it (WT's outer layer is edema, TC's is the
#: necrotic core, ET is the enhancing tumour), so a region's box matches its outline.
REGION_COLORS = {
    "WT": CLASS_COLORS[2],
    "TC": CLASS_COLORS[1],
    "ET": CLASS_COLORS[3],
}

#: On-disk label -> internal class, for each labelling convention.
CONVENTIONS = {
    # BraTS 2017-2021 (and the Kaggle copies of 2019/2020): enhancing tumour is 4.
    "brats": {0: 0, 1: 1, 2: 2, 4: 3},
    # BraTS 2023 GLI: enhancing tumour is 3 again.
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
    # Medical Segmentation Decathlon Task01: 1 edema, 2 non-enhancing, 3 enhancing.
    "msd": {0: 0, 1: 2, 2: 1, 3: 3},
    # The report's own convention (what this package writes for intermediate files).
    "internal": {0: 0, 1: 1, 2: 2, 3: 3},
}

#: Which labelling convention each data layout of `LAYOUTS` uses (and ``"internal"``, the
#: package's own files).
LAYOUT_CONVENTION = {
    "brats2019": "brats",
    "brats2020": "brats",
    "brats2020-kaggle": "brats",
    "brats2021": "brats",
    "brats2023-gli": "brats2023",
    "msd": "msd",
    "internal": "internal",
}


def convention_for_layout(layout):
    """Return the labelling convention name (a key of `CONVENTIONS`) for a data layout.

    Parameters
    ----------
    layout : str
        A layout name such as ``"brats2020"`` or ``"msd"``, or a convention name.

    Returns
    -------
    str
    """
    if layout in CONVENTIONS:
        return layout
    try:
        return LAYOUT_CONVENTION[layout]
    except KeyError as error:
        known = ", ".join(sorted(set(LAYOUT_CONVENTION) | set(CONVENTIONS)))
        raise ConfigError(f"Unknown layout or label convention {layout!r}; known: {known}") from error


def _lookup_table(mapping):
    table = np.full(max(mapping) + 1, 255, dtype=np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return table


def to_internal(seg, layout, source=None):
    """Convert a segmentation from a release's on-disk labels to the internal classes 0-3.

    Parameters
    ----------
    seg : array-like of int
        Label volume as stored on disk.
    layout : str
        Data layout (``"brats2020"``, ``"brats2023-gli"``, ``"msd"``, ...) or convention name.
    source : str or path, optional
        The file the labels came from, named in the error message. Default=None.

    Returns
    -------
    numpy.ndarray of uint8
        Same shape as `seg`, values in {0, 1, 2, 3}.

    Raises
    ------
    gliseg_nb.DataError
        (a ValueError) If `seg` holds a label that the release does not use (for example 3
        in BraTS 2020), or values that are not whole numbers.
    """
    convention = convention_for_layout(layout)
    mapping = CONVENTIONS[convention]
    seg = np.asarray(seg)
    if seg.dtype.kind == "f":
        if not np.all(np.isfinite(seg)) or np.any(seg != np.round(seg)):
            raise DataError(f"{source or 'segmentation'}: labels are not whole numbers")
        if seg.size and (seg.min() < np.iinfo(np.int16).min or seg.max() > np.iinfo(np.int16).max):
            _raise_unexpected(np.unique(seg), mapping, convention, source)
        seg = seg.astype(np.int16)
    elif seg.dtype.kind == "b":
        seg = seg.view(np.uint8)
    elif seg.dtype.kind not in "iu":
        raise DataError(f"{source or 'segmentation'}: labels must be integers, got {seg.dtype}")
    if seg.dtype.itemsize > 2:
        lowest, highest = (int(seg.min()), int(seg.max())) if seg.size else (0, 0)
        if lowest < np.iinfo(np.int16).min or highest > np.iinfo(np.int16).max:
            _raise_unexpected(np.unique(seg), mapping, convention, source)
        seg = seg.astype(np.int16)
    # One lookup per voxel in a table covering every value of the (at most 16-bit) type,
    # read as unsigned: values the release does not use map to 255. This is one pass over
    # the volume, several times faster than finding the distinct values first.
    unsigned = seg.view(np.dtype(f"u{seg.dtype.itemsize}"))
    table = np.full(2 ** (8 * seg.dtype.itemsize), _UNEXPECTED, dtype=np.uint8)
    for value, target in mapping.items():
        table[np.array(value, dtype=seg.dtype).view(unsigned.dtype)] = target
    if unsigned.flags.f_contiguous and not unsigned.flags.c_contiguous:
        converted = table[unsigned.T].T  # NIfTI volumes are Fortran-ordered: keep them so
    else:
        converted = table[unsigned]
    if converted.size and converted.max() == _UNEXPECTED:
        _raise_unexpected(np.unique(seg[converted == _UNEXPECTED]), mapping, convention, source)
    return converted


# Marks, in `to_internal`'s lookup table, a value that the release does not use.
_UNEXPECTED = 255


def _raise_unexpected(values, mapping, convention, source):
    unexpected = sorted(int(v) for v in values if int(v) not in mapping)
    raise DataError(
        f"{source or 'segmentation'}: unexpected label value(s) {unexpected} for the "
        f"{convention!r} convention (allowed: {sorted(mapping)})"
    )


def from_internal(labels, layout):
    """Convert internal classes 0-3 to a release's on-disk labels.

    Parameters
    ----------
    labels : array-like of int
        Internal classes, values in {0, 1, 2, 3}.
    layout : str
        Target data layout or convention name.

    Returns
    -------
    numpy.ndarray of uint8
    """
    convention = convention_for_layout(layout)
    inverse = {target: source for source, target in CONVENTIONS[convention].items()}
    labels = np.asarray(labels)
    bad = sorted(int(v) for v in np.unique(labels) if int(v) not in inverse)
    if bad:
        raise ValueError(f"Internal labels must be 0-3, got {bad}")
    return _lookup_table(inverse)[labels.astype(np.int64)]


def region_mask(labels, region):
    """Boolean mask of a BraTS region (``"WT"``, ``"TC"`` or ``"ET"``) in internal labels.

    Parameters
    ----------
    labels : array-like of int
        Internal classes 0-3.
    region : {"WT", "TC", "ET"}
        The region.

    Returns
    -------
    numpy.ndarray of bool
    """
    try:
        classes = REGIONS[region]
    except KeyError as error:
        raise ConfigError(f"Unknown region {region!r}; expected one of {list(REGIONS)}") from error
    return np.isin(np.asarray(labels), classes)


def region_masks(labels):
    """All three region masks, as a dict ``{"WT": ..., "TC": ..., "ET": ...}``."""
    return {region: region_mask(labels, region) for region in REGIONS}


def labels_to_regions(labels):
    """Region targets of internal labels: one channel each for WT, TC and ET.

    Parameters
    ----------
    labels : array-like of int
        Internal classes 0-3, any shape.

    Returns
    -------
    numpy.ndarray of float32, shape ``labels.shape + (3,)``
        1 where the pixel is in the region, else 0; channels in the order of `REGIONS`.
        Unlike one-hot classes the channels overlap: enhancing tumour is in all three.
    """
    labels = np.asarray(labels)
    return np.stack([region_mask(labels, region) for region in REGIONS], axis=-1).astype(np.float32)


def regions_to_labels(probabilities, threshold=0.5):
    """Internal labels from WT/TC/ET probabilities, the BraTS way (inverse of `labels_to_regions`).

    The regions are nested (ET inside TC inside WT) but three independent sigmoids need
    not be, so the innermost region wins: enhancing tumour (3) where ``p_ET > threshold``;
    else necrotic core (1) where ``p_TC > threshold``; else edema (2) where
    ``p_WT > threshold``; else background (0). This is how nnU-Net and the BraTS
    challenge's region-trained models turn regions back into labels.

    Parameters
    ----------
    probabilities : array-like of float, shape (..., 3)
        Probabilities of WT, TC and ET, in the order of `REGIONS`.
    threshold : float, default=0.5
        A pixel is in a region when its probability is above this.

    Returns
    -------
    numpy.ndarray of uint8, shape ``probabilities.shape[:-1]``
        Internal classes 0-3.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1:] != (len(REGIONS),):
        raise ConfigError(f"region probabilities need {len(REGIONS)} channels (WT, TC, ET) last, "
                          f"got shape {probabilities.shape}")
    inside = probabilities > threshold
    whole, core, enhancing = (inside[..., index] for index in range(len(REGIONS)))
    labels = np.where(whole, 2, 0)
    labels = np.where(core, 1, labels)
    return np.where(enhancing, 3, labels).astype(np.uint8)


def decode_outputs(probabilities, outputs="softmax"):
    """Internal labels from a network's outputs, whatever its last layer.

    Parameters
    ----------
    probabilities : array-like of float, shape (..., K)
        What the network gives per pixel.
    outputs : {"softmax", "regions"}, default="softmax"
        ``Config.outputs``: class probabilities (the most probable class wins), or the
        three WT/TC/ET sigmoids (`regions_to_labels`).

    Returns
    -------
    numpy.ndarray of uint8, shape ``probabilities.shape[:-1]``
    """
    if outputs == "regions":
        return regions_to_labels(probabilities)
    if outputs != "softmax":
        raise ConfigError(f"outputs must be 'softmax' or 'regions', got {outputs!r}")
    return _argmax_classes(np.asarray(probabilities))


def _argmax_classes(probabilities):
    """``np.argmax(probabilities, axis=-1)`` as uint8, computed one class plane at a time.

    With a few classes and millions of pixels, `np.argmax` loops over millions of rows of
    four values; comparing whole planes (each class against the best so far) does the same
    in a few vectorised passes, about twice as fast on a whole-volume prediction. The result
    is the same: the first class wins a tie (only a strictly larger value takes over), and
    wherever a value is NaN, `np.argmax` itself decides.
    """
    n_classes = probabilities.shape[-1] if probabilities.ndim else 0
    if probabilities.ndim < 2 or not 2 <= n_classes <= 256 or probabilities.dtype.kind not in "fiub":
        return np.argmax(probabilities, axis=-1).astype(np.uint8)
    planes = np.moveaxis(probabilities, -1, 0)
    best = np.array(planes[0], order="K")  # a copy in the planes' own memory order
    classes = np.zeros_like(best, dtype=np.uint8)
    for class_id in range(1, n_classes):
        plane = planes[class_id]
        np.copyto(classes, np.uint8(class_id), where=plane > best)
        np.maximum(best, plane, out=best)  # NaN propagates: marks the pixels to redo
    if best.dtype.kind == "f":
        unsure = np.isnan(best)
        if unsure.any():
            classes[unsure] = np.argmax(probabilities[unsure], axis=-1)
    return classes


def label_colormap():
    """A matplotlib colormap and norm that draw internal labels in the report's colours.

    Background (0) is fully transparent so the colormap can be laid over an image.

    Returns
    -------
    cmap : matplotlib.colors.ListedColormap
    norm : matplotlib.colors.BoundaryNorm
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    colors = [(*CLASS_COLORS[c], 0.0 if c == 0 else 1.0) for c in sorted(CLASS_COLORS)]
    cmap = ListedColormap(colors, name="brats_labels")
    norm = BoundaryNorm(np.arange(-0.5, len(colors) + 0.5), cmap.N)
    return cmap, norm


def legend_handles(include_background=False):
    """Matplotlib patches for a legend of the tumour classes in the report's colours."""
    from matplotlib.patches import Patch

    return [
        Patch(color=CLASS_COLORS[c], label=f"{c}: {CLASS_NAMES[c]}")
        for c in sorted(CLASS_NAMES)
        if include_background or c != 0
    ]
