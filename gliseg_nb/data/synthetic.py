"""The embedded dataset: synthetic BraTS 2020-layout cases built on a real brain template.

No BraTS data can be downloaded inside a classroom notebook, so the course ships a generator
instead: a simulator of glioma MRI whose training value should carry over to real scans.
Each case is the MNI152 1 mm brain bundled with nilearn (T1 template, grey and white-matter
maps, brain mask), resampled onto the BraTS grid (240 x 240 x 155, 1 mm, LPS like the real
files), with, per "patient" (version 4 of the generator):

* its own brain shape: a random affine (size 84-100 % of the template's), a smooth random nonlinear warp
  (displacements of a few mm over ~2 cm) and larger or smaller ventricles;
* one glioma (sometimes a second, smaller focus) of the sizes real ones have: whole tumour
  about 20-250 mL, tumour core about half of it. High-grade tumours (70 %) have an
  enhancing rim of uneven thickness (2-9 mm), incomplete in places, with nodules, around an
  off-centre necrosis; some are solid. Low-grade-like tumours (30 %) are large (60-220 mL)
  with a big non-enhancing core and little or no enhancement. Edema spreads further along
  white matter, stops at the cortex and the ventricles, and stays bright up to its border;
  the tumour pushes the anatomy aside (mass effect);
* lesions that look the way real ones do (version 4), each class's contrast drawn per case
  from ranges set from z-score statistics of real BraTS scans: enhancement from faint to
  strong and patchy within a tumour, necrosis and non-enhancing tumour grey rather than
  black on T1 and T1ce, a core on FLAIR about as bright as the edema, darker (the T2-FLAIR
  mismatch of some low-grade tumours) or brighter;
* confounders, as in real scans: enhancing vessels along the cortex and choroid plexus in
  the ventricles on T1ce, FLAIR-bright periventricular white-matter lesions that are not
  tumour, and, in some cases, an imperfect skull-strip (leftover tissue at the edge, brain
  eroded in places);
* four contrasts from the tissue and lesion classes in the clinical ordering (T1: white >
  grey > CSF; T2: CSF bright; FLAIR: CSF dark, edema bright; T1ce: enhancement), each
  normal tissue's intensity jittered per case; then scanner effects: a global scale, a smooth
  multiplicative bias field, Rician noise, blur, and in half the cases thick axial slices
  (2.5-6.5 mm) upsampled back to 1 mm, as many older scans were. A SynthSeg-style
  randomisation of every class's intensity over wide ranges is built in but off by
  default: at the course's training budget it made transfer to real scans worse.

What it is not: one template brain, deformed, is not a population; no simulated tumour
is a real one. `benchmarks/bench_transfer.py` measures how well a model trained on these
cases segments real BraTS scans (see docs/benchmarks.md).

Every case is derived from ``np.random.SeedSequence(seed, spawn_key=(index,))``: the same
seed writes identical voxels (and identical bytes), and case ``k`` is the same whatever the
number of cases asked for.

Settings
--------
``GLISEG_NB_DATA``
    If set, `get_data_dir` returns this folder (your real BraTS data) instead of the
    synthetic dataset.
``GLISEG_NB_CACHE``
    Where `get_data_dir` generates the synthetic dataset (default: pooch's OS cache folder
    for ``gliseg-nb``, e.g. ``~/.cache/gliseg-nb`` on Linux).
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from .._io import CACHE_ENV_VAR, cache_root
from .._threads import map_in_threads
from ..labels import MODALITIES
from ._errors import DataError

__all__ = [
    "DATA_ENV_VAR",
    "CACHE_ENV_VAR",
    "GENERATOR_VERSION",
    "BRATS_SHAPE",
    "BRATS_AFFINE",
    "synthesize",
    "synthesize_case",
    "get_data_dir",
    "threshold_baseline",
]

#: Environment variable naming a folder of real BraTS data to use instead of the synthetic set.
DATA_ENV_VAR = "GLISEG_NB_DATA"
#: Environment variable naming the cache folder the synthetic dataset is generated into.
#: Bumped whenever the generator changes the voxels it writes (names the cache folder).
GENERATOR_VERSION = "4"

# The parts of the simulation, each of which can be switched off (the first five back to
# what version 2 did, the last two back to version 3) to measure what it is worth:
# `benchmarks/bench_transfer.py --ablate PART` (or on, `--add PART`). Private: the dataset
# the course uses is the one these defaults give.
_SIMULATION = {
    # brain shape: nonlinear warp, wider size range, ventricles enlarged or narrowed
    "anatomy": True,
    # tumour sizes of real gliomas, eccentric necrosis, incomplete rims, nodules, LGG
    # enhancement spots, edema stopped by the cortex, multifocal tumours
    "tumour": True,
    # per-case random class intensities per contrast, gamma, tumour texture (SynthSeg's
    # domain randomisation). Off: at the quick preset's budget (~90 s of training) it made
    # transfer to real scans worse, not better (docs/benchmarks.md, the ablation); the
    # fixed contrast table of version 2, jittered +-5 % per case, is used instead.
    "appearance": False,
    # thick axial slices upsampled to 1 mm, wider blur, noise and bias ranges
    "resolution": True,
    # imperfect skull-stripping: leftover tissue outside the brain, eroded edges
    "skull_edge": True,
    # version 4, the look of the lesions as real scans show it, drawn per case: faint to
    # strong and patchy enhancement, necrosis and non-enhancing tumour grey (not black) on
    # T1/T1ce, a core on FLAIR from darker than the edema (T2-FLAIR mismatch) to as bright,
    # edema bright up to its border. Off: version 3's fixed lesion contrasts.
    "lesions": True,
    # version 4 low-grade tumours: large (60-220 mL), mostly non-enhancing core, rarely a
    # small enhancing spot. Off: version 3's low-grade sizes (those of the high-grade ones).
    "low_grade": True,
}

#: Shape of every BraTS volume (1 mm isotropic, SRI24 space).
BRATS_SHAPE = (240, 240, 155)
#: The voxel-to-world matrix of the BraTS releases: LPS voxel order, 1 mm.
BRATS_AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)

_CASE_PREFIX = "BraTS20_Synthetic_"
_COMPLETE_MARKER = ".complete"
_PARAMETERS_FILE = "synthetic_parameters.json"

# The brain never leaves this box of the BraTS grid (template extent + largest scaling and
# rotation). Each case then works on its brain's own bounding box (about 140 x 175 x 145),
# not on 240 x 240 x 155: most of the grid is background.
_CROP_START = np.array([40, 22, 0])
_CROP_SHAPE = (160, 196, 155)
# BraTS voxel that the MNI point (0, -17, 10) mm (the middle of the brain) lands on.
_GRID_CENTRE = np.array([120.0, 120.0, 77.0])
# MNI voxel index of that point (MNI152 1 mm origin is at voxel (98, 134, 72)).
_TEMPLATE_CENTRE = np.array([98.0, 117.0, 82.0])
# The smooth random warp of the anatomy: displacement nodes over the crop box, ~20 mm apart.
_WARP_NODES = (9, 11, 9)
_WARP_SPACING = np.array([(n - 1) / (k - 1) for n, k in zip(_CROP_SHAPE, _WARP_NODES)])
# Centre of the lateral ventricles on the BraTS grid (MNI (0, -10, 15) mm, before each
# case's affine) and the reach of their enlargement (voxels; long front to back, as the
# ventricles are).
_VENTRICLE_CENTRE = np.array([120.0, 113.0, 82.0])
_VENTRICLE_RADIUS = np.array([22.0, 38.0, 24.0])

# Relative intensity of each tissue and lesion class in each contrast (white matter ~ 1 in
# T1). Ordered as in clinical scans; each case jitters them a little.
_CONTRASTS = {
    #        wm    gm    csf   edema necro net   et    wml   vessel choroid
    "t1":   (1.00, 0.72, 0.28, 0.70, 0.38, 0.50, 0.78, 0.82, 0.80, 0.60),
    "t1ce": (1.00, 0.74, 0.28, 0.70, 0.33, 0.50, 1.55, 0.82, 1.90, 1.70),
    "t2":   (0.55, 0.80, 1.80, 1.25, 1.60, 1.40, 1.02, 1.15, 0.45, 1.10),
    "flair": (0.62, 0.82, 0.18, 1.20, 0.75, 1.38, 1.08, 1.18, 0.60, 0.75),
}
_CLASS_INDEX = {name: i for i, name in enumerate(
    ("wm", "gm", "csf", "edema", "necrosis", "net", "et", "wml", "vessel", "choroid"))}
# Typical white-matter level of each contrast in real BraTS int16 files (before the random
# per-case scale).
_SCANNER_LEVEL = {"t1": 700.0, "t1ce": 650.0, "t2": 450.0, "flair": 380.0}


# -- templates ---------------------------------------------------------------------------
_TEMPLATES_LOCK = threading.Lock()


def _templates():
    """The MNI152 maps (MNI voxel grid), loaded once per process (a few seconds).

    Thread-safe: `synthesize`'s worker threads start together, and only one loads them.
    """
    with _TEMPLATES_LOCK:
        return _load_templates()


@functools.lru_cache(maxsize=1)
def _load_templates():
    from nilearn import datasets

    def load(function):
        data = np.asarray(getattr(datasets, function)(resolution=1).dataobj, dtype=np.float32)
        # NIfTI data arrive in Fortran order; resampling reads along the last axis, and
        # C order makes it about three times faster.
        return np.ascontiguousarray(data)

    mask = load("load_mni152_brain_mask")
    gm = load("load_mni152_gm_template") * mask
    wm = load("load_mni152_wm_template") * mask
    t1 = load("load_mni152_template") * mask
    t1 /= np.median(t1[wm > 0.9])  # white matter = 1, whatever the template's scaling

    # Coarse (2 mm) helper maps used only to place lesions and vessels: depth below the
    # brain surface and distance to the ventricles, in mm.
    coarse_mask = mask[::2, ::2, ::2] > 0.5
    depth = ndi.distance_transform_edt(coarse_mask) * 2.0
    csf = np.clip(mask - gm - wm, 0.0, 1.0)[::2, ::2, ::2]
    ventricles = (csf > 0.6) & (depth > 14.0)
    ventricle_distance = ndi.distance_transform_edt(~ventricles) * 2.0
    return {
        # Warped together per case; CSF is derived afterwards (mask - grey - white) because
        # interpolation is linear, which saves one costly resampling.
        "maps": np.ascontiguousarray(np.stack([t1, gm, wm, mask])),
        "wm": wm,
        "mask": mask,
        "depth": depth.astype(np.float32),
        "ventricle_distance": ventricle_distance.astype(np.float32),
    }


class _Box:
    """A box of the BraTS grid: where one case's 3-D arrays live."""

    def __init__(self, start, shape):
        self.start = np.asarray(start, dtype=np.int64)
        self.shape = tuple(int(n) for n in shape)

    @property
    def slices(self):
        return tuple(slice(int(s), int(s) + n) for s, n in zip(self.start, self.shape))

    def axes(self):
        """BraTS voxel coordinates along each axis (1-D float32 arrays)."""
        return [np.arange(s, s + n, dtype=np.float32) for s, n in zip(self.start, self.shape)]


class _Anatomy:
    """A per-case mapping from BraTS voxels to MNI voxels.

    In order: the mass effect of the tumour (tissue pushed away from it), a smooth random
    nonlinear warp (brains differ in shape, not only in size), a random affine (scale,
    rotation, shift), then, in template space, enlarged or shrunken ventricles (atrophy
    and hydrocephalus widen them, a large tumour compresses them).
    """

    def __init__(self, rng, varied=True):
        if varied:
            scale = rng.uniform(0.84, 1.0) * rng.uniform(0.95, 1.05, size=3)
            angles = np.deg2rad(rng.normal(0.0, [3.0, 3.0, 5.0]))
        else:  # version 2: one brain under a small affine
            scale = rng.uniform(0.90, 0.99) * rng.uniform(0.97, 1.03, size=3)
            angles = np.deg2rad(rng.normal(0.0, [2.0, 2.0, 3.5]))
        self.matrix = (_rotation(angles) @ np.diag(1.0 / scale)).astype(np.float64)
        self.shift = rng.uniform(-4.0, 4.0, size=3)
        # BraTS voxel axes run right-to-left and anterior-to-posterior, MNI ones the other way.
        self.flip = np.array([-1.0, -1.0, 1.0])
        self.mass_centre = None
        self.mass_strength = 0.0
        self.mass_radius = 1.0
        self.scale = scale
        self.angles_deg = np.rad2deg(angles)
        # Smooth warp: random displacements (mm) on a coarse grid of the crop box, spaced
        # about 20 mm, interpolated linearly between nodes.
        self.warp_mm = float(rng.uniform(1.5, 4.5)) if varied else 0.0
        self.warp = (rng.standard_normal((3, *_WARP_NODES)).astype(np.float32)
                     * np.float32(self.warp_mm)) if varied else None
        # > 0: ventricles enlarged (template sampled closer to their centre), < 0: narrowed.
        self.ventricles = float(rng.uniform(-0.15, 0.45)) if varied else 0.0
        self.pulls = [(_VENTRICLE_CENTRE, _VENTRICLE_RADIUS, self.ventricles)] if varied else []

    def set_mass_effect(self, centre, strength, radius):
        self.mass_centre = np.asarray(centre, dtype=np.float64)
        self.mass_strength = float(strength)
        self.mass_radius = float(radius)
        # Applied first: the tumour pushes the (already enlarged or not) ventricles.
        self.pulls.insert(0, (self.mass_centre, np.full(3, self.mass_radius), self.mass_strength))

    def _warp_points(self, points):
        """Displacements (3, N) of the smooth warp at BraTS coordinates (3, N)."""
        index = (points - _CROP_START[:, None]) / _WARP_SPACING[:, None]
        return np.stack([ndi.map_coordinates(self.warp[k], index, order=1, mode="nearest")
                         for k in range(3)])

    def _warp_box(self, box):
        """Displacements (3, *box.shape) of the smooth warp: separable linear interpolation."""
        weights = [_linear_weights((axis - _CROP_START[k]) / _WARP_SPACING[k], _WARP_NODES[k])
                   for k, axis in enumerate(box.axes())]
        out = np.empty((3, *box.shape), dtype=np.float32)
        for k in range(3):
            field = np.tensordot(weights[0], self.warp[k], axes=(1, 0))
            field = np.tensordot(field, weights[1], axes=(1, 1))          # (X, Nz, Y)
            field = np.tensordot(field, weights[2], axes=(1, 1))          # (X, Y, Z)
            out[k] = field
        return out

    def to_template(self, points):
        """MNI voxel coordinates (3, N) of BraTS voxel coordinates (3, N)."""
        original = points = np.asarray(points, dtype=np.float64)
        for centre, radius, strength in self.pulls:
            centre = np.asarray(centre, dtype=np.float64)[:, None]
            # As in `template_coordinates`: the weight from the original position, the
            # pull towards the centre from the current one.
            weight = np.exp(-np.sum(((original - centre) / np.asarray(radius)[:, None]) ** 2, axis=0))
            points = points - (points - centre) * (strength * weight)
        if self.warp is not None:
            points = points + self._warp_points(original)  # as for boxes: at the original
        relative = self.matrix @ (points - _GRID_CENTRE[:, None] - self.shift[:, None])
        return _TEMPLATE_CENTRE[:, None] + self.flip[:, None] * relative

    def brain_box(self, mask, margin=5):
        """The smallest box of the BraTS grid holding this case's brain (from a coarse pass)."""
        step = 3
        axes = [np.arange(s, s + n, step) for s, n in zip(_CROP_START, _CROP_SHAPE)]
        points = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")])
        inside = points[:, _lookup(mask, self.to_template(points)) > 0]
        lo = np.maximum(inside.min(axis=1) - step - margin, 0)
        hi = np.minimum(inside.max(axis=1) + step + margin + 1, BRATS_SHAPE)
        return _Box(lo, hi - lo)

    def template_coordinates(self, box):
        """MNI voxel coordinates of every voxel of `box`, shape (3, *box.shape), float32."""
        axes = box.axes()
        shapes = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
        grid = [a.reshape(shape) for a, shape in zip(axes, shapes)]
        # The box has millions of voxels: the float32 operations below work in place
        # (`out=`) on arrays of its size rather than making a new one for each step.
        scratch = np.empty(box.shape, dtype=np.float32)
        for centre, radius, strength in self.pulls:
            # Separable Gaussian weight of the distance to the centre: three 1-D factors.
            factors = [np.exp(-((a - np.float32(c)) / np.float32(r)) ** 2).reshape(shape)
                       for a, c, r, shape in zip(axes, centre, radius, shapes)]
            pull = np.float32(strength) * (factors[0] * factors[1]) * factors[2]
            moved = []
            for g, c in zip(grid, centre):
                # g - (g - c) * pull
                if g.shape == box.shape:  # an array of this loop's own: updated in place
                    np.subtract(g, np.float32(c), out=scratch)
                    np.multiply(scratch, pull, out=scratch)
                    moved.append(np.subtract(g, scratch, out=g))
                else:  # still one axis of the box (first pull)
                    step = np.multiply(g - np.float32(c), pull)
                    moved.append(np.subtract(g, step, out=step))
            grid = moved
        del pull
        if self.warp is not None:
            warp = self._warp_box(box)
            grid = [np.add(g, w, out=g) if g.shape == box.shape else g + w
                    for g, w in zip(grid, warp)]
            del warp
        centred = [np.subtract(g, np.float32(c + s), out=g) if g.shape == box.shape
                   else g - np.float32(c + s) for g, c, s in zip(grid, _GRID_CENTRE, self.shift)]
        coords = np.empty((3, *box.shape), dtype=np.float32)
        for row in range(3):
            # centre + flip * (m0 * x + m1 * y + m2 * z), summed left to right.
            m = self.matrix[row].astype(np.float32)
            out = np.multiply(m[0], centred[0], out=coords[row])
            np.add(out, np.multiply(m[1], centred[1], out=scratch), out=out)
            np.add(out, np.multiply(m[2], centred[2], out=scratch), out=out)
            # flip is +-1 and the centre a whole number: float32 gives the same values as
            # float64 then rounding to float32.
            np.multiply(out, np.float32(self.flip[row]), out=out)
            np.add(out, np.float32(_TEMPLATE_CENTRE[row]), out=out)
        return coords


def _linear_weights(positions, n_nodes):
    """Dense (len(positions), n_nodes) weights of linear interpolation between grid nodes."""
    positions = np.clip(np.asarray(positions, dtype=np.float64), 0, n_nodes - 1)
    low = np.minimum(np.floor(positions).astype(int), n_nodes - 2)
    frac = positions - low
    weights = np.zeros((len(positions), n_nodes), dtype=np.float32)
    rows = np.arange(len(positions))
    weights[rows, low] = 1.0 - frac
    weights[rows, low + 1] = frac
    return weights


def _rotation(angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _random_rotation(rng):
    # QR of a Gaussian matrix gives a uniformly random orthogonal matrix.
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _lookup(volume, index, step=1):
    """Nearest-voxel values of `volume` (sampled every `step` voxels) at MNI coordinates (3, N)."""
    index = np.rint(np.asarray(index) / step).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.array(volume.shape)[:, None]), axis=0)
    values = np.zeros(index.shape[1], dtype=np.float32)
    values[inside] = volume[tuple(index[:, inside])]
    return values


def _random_crop_points(rng, n):
    return (_CROP_START[:, None] + rng.uniform(0, 1, size=(3, n)) * np.array(_CROP_SHAPE)[:, None])


def _smooth_noise(rng, shape, sigma):
    """Unit-variance Gaussian random field, smoothed at half resolution (cheap) then upsampled."""
    coarse_shape = tuple(max(2, -(-n // 2)) for n in shape)
    field = ndi.gaussian_filter(rng.standard_normal(coarse_shape, dtype=np.float32), sigma / 2.0)
    field = ndi.zoom(field, [n / c for n, c in zip(shape, coarse_shape)], order=1)[
        tuple(slice(0, n) for n in shape)]
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


# -- one case ------------------------------------------------------------------------------
def _case_rng(seed, index):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _draw_tumour(rng, anatomy, templates, kind=None, satellite=False):
    """Kind, centre, sizes and shape parameters of one tumour; the centre lies in cerebral
    white matter.

    Version 3 draws the sizes of real gliomas (`_SIMULATION["tumour"]`): whole tumour
    about 25-230 mL (a satellite of a multifocal tumour 3-25 mL), tumour core 25-70 % of
    it in high-grade and 40-85 % in low-grade tumours, enhancing rims of 2-10 mm.
    """
    realistic = _SIMULATION["tumour"]
    if kind is None:
        roll = rng.uniform()
        kind = "lgg" if roll < 0.3 else ("solid" if roll < 0.42 else "necrotic")
    # Version 4: low-grade gliomas are usually found late, large (BraTS low-grade cases:
    # whole tumour 160-230 mL, most of it non-enhancing core).
    low_grade = _SIMULATION["low_grade"] and kind == "lgg" and realistic
    if realistic:
        if satellite:
            whole_ml = rng.uniform(3.0, 25.0)
        elif low_grade:
            whole_ml = rng.uniform(60.0, 220.0)
        else:
            whole_ml = rng.uniform(20.0, 200.0)
        if low_grade:
            core_fraction = rng.uniform(0.5, 0.85)
        else:
            core_fraction = rng.uniform(0.4, 0.85) if kind == "lgg" else rng.uniform(0.25, 0.7)
        # Radii of spheres of those volumes. The edema reaches about 1.1 core radii plus
        # its margin, and loses some volume to CSF and cortex (measured: ~0.9 of the sphere).
        core_radius = (3000.0 * whole_ml * core_fraction / (4.0 * np.pi)) ** (1.0 / 3.0)
        whole_radius = (3000.0 * whole_ml / (4.0 * np.pi)) ** (1.0 / 3.0)
        edema_margin = max(1.03 * whole_radius - 1.1 * core_radius, 2.0)
    else:  # version 2
        core_radius = rng.uniform(12.0, 21.0) if kind != "lgg" else rng.uniform(10.0, 18.0)
        edema_margin = rng.uniform(6.0, 16.0) if kind != "lgg" else rng.uniform(3.0, 10.0)
    points = _random_crop_points(rng, 6000)
    mni = anatomy.to_template(points)
    white = _lookup(templates["wm"], mni)
    depth = _lookup(templates["depth"], mni, step=2)
    ventricle_distance = _lookup(templates["ventricle_distance"], mni, step=2)
    midline_distance = np.abs(mni[0] - _TEMPLATE_CENTRE[0])  # mm from the MNI midline
    # Version 3: gliomas start in white matter but many reach the cortex and the surface,
    # so the centre may lie closer to the surface than the tumour's radius.
    min_depth = min(0.5 * core_radius, 12.0) if realistic else max(14.0, 0.8 * core_radius)
    ok = ((white > 0.5) & (depth > max(min_depth, 6.0))
          & (midline_distance > 12.0) & (ventricle_distance > 5.0)
          & (points[2] > 40) & (points[2] < 110)
          # MNI z > -12 mm: above the cerebellum and the temporal poles' base.
          & (mni[2] > 60))
    candidates = points[:, ok]
    if candidates.shape[1] == 0:  # never seen; fall back to a point deep in one hemisphere
        candidates = np.array([[95.0], [110.0], [85.0]])
    centre = candidates[:, rng.integers(candidates.shape[1])]
    tumour = {
        "kind": kind,
        "centre": centre,
        "core_radius": core_radius,
        "edema_margin": edema_margin,
        "axes": rng.uniform(0.75, 1.25, size=3),
        "rotation": _random_rotation(rng),
        "lobulation": rng.uniform(0.18, 0.32),
        "mass_effect": rng.uniform(0.15, 0.4),
    }
    if realistic:
        tumour.update({
            "lobulation": rng.uniform(0.2, 0.45),
            # Rim thickness is (1 - necrosis_level) x core radius: 2-9 mm.
            "necrosis_level": rng.uniform(0.62, 0.9),
            # Necrosis off-centre by up to a third of the radius: rims of uneven thickness.
            "necrosis_offset": _random_unit(rng) * rng.uniform(0.0, 0.35),
            # Parts of the rim that do not enhance (incomplete rims) and enhancing nodules.
            "rim_gap_threshold": rng.uniform(0.4, 2.5),
            "nodule_threshold": rng.uniform(1.4, 3.0),
            # Low-grade tumours: some have a small patch of enhancement (version 4: fewer).
            "lgg_enhancing": bool(rng.uniform() < (0.2 if low_grade else 0.35)),
            "white_matter_preference": rng.uniform(0.3, 0.9),
        })
    else:
        tumour.update({"necrosis_level": rng.uniform(0.42, 0.66), "necrosis_offset": np.zeros(3),
                       "rim_gap_threshold": np.inf, "nodule_threshold": np.inf,
                       "lgg_enhancing": False, "white_matter_preference": 0.35})
    # Version 4 (`_SIMULATION["lesions"]`): the edema's signal at its border, as a share
    # of its full contrast. Real edema stays FLAIR-bright up to where the experts draw its
    # edge; version 3's faded to 45 %, fainter than what is labelled edema in real scans
    # (docs/benchmarks.md compares the statistics).
    tumour["edema_floor"] = rng.uniform(0.5, 0.85) if _SIMULATION["lesions"] else 0.45
    return tumour


def _random_unit(rng):
    direction = rng.normal(size=3)
    return direction / (np.linalg.norm(direction) + 1e-9)


def _tumour_maps(rng, tumour, tissue, case_box):
    """Label masks and edema strength inside a box around the tumour (case-box coordinates)."""
    centre = tumour["centre"] - case_box.start
    half = int(np.ceil(tumour["core_radius"] * 1.45 + tumour["edema_margin"] * 1.7 + 6))
    lo = np.maximum(np.floor(centre).astype(int) - half, 0)
    hi = np.minimum(np.floor(centre).astype(int) + half + 1, case_box.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(hi - lo)

    axes = [np.arange(a, b, dtype=np.float32) - np.float32(c) for a, b, c in zip(lo, hi, centre)]
    rel = [axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]]
    rot = tumour["rotation"].astype(np.float32)
    # Ellipsoidal distance in units of the core radius, in a random orientation; the
    # necrosis is measured from a shifted centre (eccentric necrosis).
    shift = np.asarray(tumour["necrosis_offset"], dtype=np.float32)
    d2 = 0.0
    n2 = 0.0
    for row in range(3):
        along = rot[row, 0] * rel[0] + rot[row, 1] * rel[1] + rot[row, 2] * rel[2]
        along = along / np.float32(tumour["axes"][row] * tumour["core_radius"])
        d2 = d2 + along**2
        n2 = n2 + (along - shift[row]) ** 2
    distance = np.sqrt(d2)
    necrosis_distance = np.sqrt(n2)
    del d2, n2
    radius = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)

    brain = tissue["mask"][box] > 0.5
    white = tissue["wm"][box]
    grey = tissue["gm"][box]
    csf = tissue["csf"][box]
    realistic = _SIMULATION["tumour"]

    # Lobulated core: the ellipsoid's level set perturbed by smooth noise.
    core_level = distance + tumour["lobulation"] * _smooth_noise(rng, shape, 4.0)
    core = (core_level < 1.0) & brain
    labels = np.zeros(shape, dtype=np.uint8)  # internal classes 0-3
    if tumour["kind"] == "necrotic":
        # A rim of irregular thickness around an irregular, off-centre necrosis.
        necrotic_level = (necrosis_distance + 0.12 * _smooth_noise(rng, shape, 3.0)
                          + 0.5 * (core_level - distance))
        necrosis = core & (necrotic_level < tumour["necrosis_level"])
        labels[core] = 3
        labels[necrosis] = 1
        if realistic:
            # Incomplete rim: patches of the wall that do not enhance (non-enhancing tumour).
            gaps = _smooth_noise(rng, shape, 5.0) > tumour["rim_gap_threshold"]
            labels[core & ~necrosis & gaps] = 1
            # Nodules: enhancing tissue bulging into the necrosis.
            nodules = _smooth_noise(rng, shape, 2.5) > tumour["nodule_threshold"]
            labels[necrosis & nodules] = 3
    elif tumour["kind"] == "solid":
        # Solid enhancing tumour with non-enhancing patches.
        patches = _smooth_noise(rng, shape, 3.0) > (rng.uniform(0.0, 1.0) if realistic else 1.0)
        labels[core] = 3
        labels[core & patches] = 1
    else:
        labels[core] = 1  # low-grade-like: non-enhancing core
        if tumour["lgg_enhancing"]:
            spot = _smooth_noise(rng, shape, 2.5) > rng.uniform(2.2, 3.0)
            labels[core & spot] = 3

    # Edema: spreads further, along white matter more than grey, never into CSF; always a
    # thin shell around the core; its signal fades towards its border. Version 3 stops it
    # at the cortex (finger-like edema follows the white matter, not the grey).
    preference = tumour["white_matter_preference"]
    reach = (tumour["core_radius"] * 1.1 + tumour["edema_margin"]) * np.clip(
        1.0 + 0.3 * _smooth_noise(rng, shape, 7.0) + preference * (white - 0.5), 0.5, 1.5)
    edema_level = radius / np.maximum(reach, 1.0)
    shell = core_level < 1.0 + 2.5 / tumour["core_radius"]
    allowed = (csf < 0.6) & ((grey < 0.6) | (edema_level < 0.6)) if realistic else (csf < 0.6)
    edema = ((edema_level < 1.0) & allowed | shell & (csf < 0.6)) & brain & (labels == 0)
    labels[edema] = 2
    strength = np.clip((1.0 - edema_level) / 0.6, 0.0, 1.0)
    floor = tumour["edema_floor"]
    strength = np.where(edema, floor + (1.0 - floor) * strength, 0.0).astype(np.float32)
    return box, labels, strength


def _place_blobs(rng, maps, centres, radii, shape):
    """Add soft irregular blobs (value 1 in the middle) to `maps` at crop coordinates."""
    for centre, radius in zip(centres.T, radii):
        half = int(np.ceil(radius * 1.6)) + 1
        c = np.rint(centre).astype(int)
        lo = np.maximum(c - half, 0)
        hi = np.minimum(c + half + 1, shape)
        if np.any(hi <= lo):
            continue
        axes = [np.arange(a, b) - x for a, b, x in zip(lo, hi, centre)]
        stretch = rng.uniform(0.6, 1.4, size=3)
        d2 = ((axes[0][:, None, None] * stretch[0]) ** 2 + (axes[1][None, :, None] * stretch[1]) ** 2
              + (axes[2][None, None, :] * stretch[2]) ** 2) / radius**2
        blob = np.clip(1.5 - d2, 0.0, 1.0).astype(np.float32)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        np.maximum(maps[box], blob, out=maps[box])


def _confounders(rng, anatomy, templates, tumour, tissue, case_box):
    """Maps (case box, 0-1) of white-matter lesions, cortical vessels and choroid plexus."""
    far_from_tumour_mm = tumour["core_radius"] * 1.3 + tumour["edema_margin"] * 1.5 + 8.0
    points = _random_crop_points(rng, 20000)
    mni = anatomy.to_template(points)
    depth = _lookup(templates["depth"], mni, step=2)
    ventricle_distance = _lookup(templates["ventricle_distance"], mni, step=2)
    white = _lookup(templates["wm"], mni)
    far = np.linalg.norm(points - tumour["centre"][:, None], axis=0) > far_from_tumour_mm
    crop_points = points - case_box.start[:, None]

    def pick(ok, count):
        chosen = np.flatnonzero(ok)
        if chosen.size == 0 or count == 0:
            return np.zeros((3, 0))
        return crop_points[:, rng.choice(chosen, size=min(count, chosen.size), replace=False)]

    shape = case_box.shape
    lesions = np.zeros(shape, dtype=np.float32)
    # Periventricular white-matter lesions: a few in most cases, many in some.
    n_lesions = int(rng.choice([2, 3, 4, 6, 8, 12, 16]))
    sites = pick(far & (white > 0.6) & (ventricle_distance > 1.0) & (ventricle_distance < 12.0),
                 n_lesions)
    _place_blobs(rng, lesions, sites, rng.uniform(2.0, 5.5, size=sites.shape[1]), shape)

    vessels = np.zeros(shape, dtype=np.float32)
    # Cortical vessels: short wandering lines just below the brain surface.
    seeds = pick(far & (depth > 1.0) & (depth < 5.0), int(rng.integers(6, 14)))
    for seed in seeds.T:
        direction = rng.normal(size=3)
        position = seed.astype(np.float64)
        for _ in range(int(rng.integers(12, 35))):
            direction = direction / np.linalg.norm(direction) + rng.normal(0, 0.35, size=3)
            position = position + direction / np.linalg.norm(direction)
            index = np.rint(position).astype(int)
            if np.any(index < 0) or np.any(index >= shape):
                break
            vessels[tuple(index)] = 1.0
    # Lines one voxel thick, blurred to about 2 mm: full signal on the line, partial beside.
    vessels = np.clip(ndi.gaussian_filter(vessels, 0.7) * 5.0, 0.0, 1.0)
    # Choroid plexus: blobs in the trigones of the lateral ventricles (both sides, usually).
    choroid = np.zeros(shape, dtype=np.float32)
    in_atrium = (ventricle_distance < 1.0) & (mni[1] < _TEMPLATE_CENTRE[1] - 12) & (mni[2] > 85)
    if rng.uniform() < 0.8:
        left = pick(in_atrium & (mni[0] > _TEMPLATE_CENTRE[0]), 1)
        right = pick(in_atrium & (mni[0] < _TEMPLATE_CENTRE[0]), 1)
        sites = np.concatenate([left, right], axis=1)
        _place_blobs(rng, choroid, sites, rng.uniform(2.5, 4.0, size=sites.shape[1]), shape)
        choroid *= tissue["csf"] > 0.3
    return {"wml": lesions * tissue["wm"], "vessel": vessels * tissue["mask"], "choroid": choroid}


def _bias_axes(coordinates):
    """The coordinates (3, N) of `_bias_field`: BraTS voxels centred and scaled (once per case)."""
    return [(c - np.float32(m)) / np.float32(80.0)
            for c, m in zip(coordinates, (120.0, 120.0, 77.0))]


def _bias_field(rng, amplitude, axes):
    """A smooth multiplicative field exp(quadratic polynomial) at the points `_bias_axes` gives."""
    x, y, z = axes
    c = rng.normal(0.0, 1.0, size=9).astype(np.float32)
    # c0 x + c1 y + c2 z + c3 x x + c4 y y + c5 z z + c6 x y + c7 y z + c8 x z, summed
    # left to right, in place (millions of brain voxels, once per contrast).
    poly = np.multiply(c[0], x)
    term = np.empty_like(poly)
    for k, (a, b) in enumerate([(y, None), (z, None), (x, x), (y, y), (z, z), (x, y), (y, z),
                                (x, z)], start=1):
        np.multiply(c[k], a, out=term)
        if b is not None:
            np.multiply(term, b, out=term)
        np.add(poly, term, out=poly)
    del term
    poly -= poly.mean()
    poly *= np.float32(amplitude) / (max(poly.max(), -poly.min()) + 1e-6)
    return np.exp(poly, out=poly)


def _thick_slice_matrix(n_slices, thickness, offset):
    """(n, n) matrix that turns 1 mm axial slices into thick slices upsampled back to 1 mm.

    Each acquired slice, ``thickness`` mm apart from ``offset``, averages the 1 mm slices
    under a Gaussian slice profile (full width at half maximum = the thickness); the 1 mm
    grid is then filled by linear interpolation between acquired slices, as the
    resampling to 1 mm of the older BraTS scans did.
    """
    positions = np.arange(offset, n_slices - 1 + 1e-6, thickness)
    if positions.size < 2:
        positions = np.array([0.0, n_slices - 1.0])
    grid = np.arange(n_slices, dtype=np.float64)
    sigma = thickness / 2.355
    profile = np.exp(-0.5 * ((grid[None, :] - positions[:, None]) / sigma) ** 2)
    profile /= profile.sum(axis=1, keepdims=True)
    step = positions[1] - positions[0]
    index = np.clip((grid - positions[0]) / step, 0, positions.size - 1)
    weights = _linear_weights(index, positions.size).astype(np.float64)
    matrix = (weights @ profile).astype(np.float32)
    # The profile's far tails fall below float32's smallest normal number. Such subnormal
    # weights add nothing a float32 sum can hold (checked: the same voxels), but they slow
    # the matrix product about eightfold on x86 CPUs, so they are set to zero.
    matrix[np.abs(matrix) < np.finfo(np.float32).tiny] = 0.0
    return matrix


# Version 4 lesion contrasts (`_SIMULATION["lesions"]`), drawn per case: uniform ranges of
# each lesion class's intensity relative to a reference class of the same contrast. They
# follow what real scans show (docs/benchmarks.md, "Version 4": enhancement on T1ce less
# far above the brain's mean than version 3's; necrosis and non-enhancing
# tumour grey-dark on T1 and T1ce rather than black; on FLAIR the core about as bright as
# the edema or darker (the T2-FLAIR mismatch of some low-grade tumours: a core bright on T2,
# much less so on FLAIR), sometimes brighter).
#   contrast: {lesion class: (reference class, low, high)}
_LESION_CONTRASTS = {
    "flair": {"edema": ("gm", 1.3, 1.85), "necrosis": ("edema", 0.5, 1.15),
              "net": ("edema", 0.55, 1.15), "et": ("edema", 0.6, 1.2)},
    "t2": {"edema": ("gm", 1.25, 1.75), "necrosis": ("edema", 0.95, 1.3),
           "net": ("edema", 1.0, 1.35), "et": ("edema", 0.7, 0.95)},
    "t1ce": {"edema": ("wm", 0.65, 0.9), "necrosis": ("wm", 0.38, 0.72),
             "net": ("wm", 0.45, 0.75), "et": ("wm", 1.2, 1.55)},
    "t1": {"edema": ("wm", 0.6, 0.9), "necrosis": ("wm", 0.4, 0.68),
           "net": ("wm", 0.42, 0.72), "et": ("wm", 0.6, 0.9)},
}


def _class_intensities(rng, modality, realistic, lesions=False):
    """Relative intensity of each class in one contrast for one case (see `_CONTRASTS`).

    With `lesions` (version 4, `_SIMULATION["lesions"]`) and not `realistic`, normal
    tissues keep the fixed table (+-5 %) and the lesion classes are drawn from
    `_LESION_CONTRASTS`.

    Version 3 (`_SIMULATION["appearance"]`) draws them per case from wide ranges around
    the clinical ordering, as SynthSeg draws its Gaussian means, with the lesion classes
    varying most: edema 1.25-2.2x the brightest normal tissue on FLAIR, necrosis 0.5-1.3x
    edema (FLAIR) and 0.35-0.95x white matter (T1ce), enhancement 1.1-1.9x the brightest
    normal tissue (T1ce).
    """
    base = np.array(_CONTRASTS[modality])
    if not realistic:
        values = base * rng.uniform(0.95, 1.05, size=len(_CLASS_INDEX))
        if lesions:
            # In order: edema first, as the other FLAIR and T2 classes refer to it.
            for name, (reference, low, high) in _LESION_CONTRASTS[modality].items():
                values[_CLASS_INDEX[name]] = values[_CLASS_INDEX[reference]] * rng.uniform(low, high)
        elif modality == "flair":
            values[_CLASS_INDEX["necrosis"]] = rng.uniform(0.4, 1.0)
        return values
    #                  wm    gm    csf   edema necro net   et    wml   vessel choroid
    spread = np.array([0.06, 0.08, 0.25, 0.15, 0.22, 0.18, 0.15, 0.15, 0.2, 0.2])
    values = base * np.exp(rng.normal(0.0, spread))
    i = _CLASS_INDEX
    wm = values[i["wm"]]
    normal = max(wm, values[i["gm"]])  # the brightest normal tissue (CSF aside)
    if modality == "flair":
        # Edema, and the non-enhancing core of low-grade tumours, are what FLAIR shows:
        # brighter than any normal tissue, to a degree that varies between scanners.
        values[i["edema"]] = normal * rng.uniform(1.25, 2.2)
        values[i["net"]] = values[i["edema"]] * rng.uniform(0.7, 1.25)
        values[i["necrosis"]] = values[i["edema"]] * rng.uniform(0.5, 1.3)
        values[i["et"]] = values[i["edema"]] * rng.uniform(0.7, 1.15)
    elif modality == "t2":
        values[i["edema"]] = normal * rng.uniform(1.3, 2.2)
        values[i["necrosis"]] = values[i["edema"]] * rng.uniform(0.8, 1.5)
        values[i["net"]] = values[i["edema"]] * rng.uniform(0.8, 1.3)
    elif modality == "t1ce":
        values[i["et"]] = normal * rng.uniform(1.1, 1.9)
        values[i["necrosis"]] = wm * rng.uniform(0.35, 0.95)
    elif modality == "t1":
        values[i["edema"]] = wm * rng.uniform(0.6, 0.95)
        values[i["necrosis"]] = wm * rng.uniform(0.25, 0.7)
    return values


def _skull_edge(rng, brain):
    """An imperfect skull-strip: a band of leftover tissue outside the brain in places,
    brain eroded in others. Returns (rim mask, lost mask), both in the case box."""
    grown = ndi.binary_dilation(brain, iterations=int(rng.integers(1, 4)))
    shrunk = ndi.binary_erosion(brain, iterations=int(rng.integers(1, 3)))
    band = grown & ~shrunk
    # Where along the edge: a smooth random field (about 2 cm patches), computed coarsely
    # and read only on the band around the brain's surface.
    coarse_shape = tuple(max(2, -(-n // 6)) for n in brain.shape)
    field = ndi.gaussian_filter(rng.standard_normal(coarse_shape, dtype=np.float32), 1.0)
    field /= field.std() + 1e-6
    where = np.nonzero(band)
    values = ndi.map_coordinates(field, [w / 6.0 for w in where], order=1, mode="nearest")
    rim = np.zeros(brain.shape, dtype=bool)
    lost = np.zeros(brain.shape, dtype=bool)
    outside = ~brain[where]
    keep = outside & (values > rng.uniform(-0.5, 0.8))
    rim[tuple(w[keep] for w in where)] = True
    erode = ~outside & (values < -rng.uniform(0.3, 1.5))
    lost[tuple(w[erode] for w in where)] = True
    return rim, lost


def synthesize_case(seed=0, index=0, return_maps=False):
    """Generate one synthetic case in memory.

    Parameters
    ----------
    seed : int, default=0
        Dataset seed.
    index : int, default=0
        Case index; the case's random stream is ``SeedSequence(seed, spawn_key=(index,))``.
    return_maps : bool, default=False
        Also return the ground truth behind the images (for tests and teaching).

    Returns
    -------
    images : dict of str to numpy.ndarray
        ``flair``, ``t1``, ``t1ce``, ``t2``: int16 volumes of shape (240, 240, 155).
    seg : numpy.ndarray
        uint8 labels in the BraTS 2020 convention (0, 1 necrotic/non-enhancing core,
        2 edema, 4 enhancing), same shape.
    parameters : dict
        The case's generation parameters (JSON-ready): grade, tumour kind and centre,
        volumes in mL, anatomy and scanner settings.
    maps : dict, only if `return_maps`
        ``slices`` (the box of the grid the other maps cover), ``wm``, ``gm``, ``csf``
        (tissue fractions, float32) and ``confounders`` (name -> bool mask of the white-
        matter lesions ``wml``, ``vessel`` and ``choroid``).
    """
    rng = _case_rng(seed, index)
    templates = _templates()
    anatomy = _Anatomy(rng, varied=_SIMULATION["anatomy"])
    tumour = _draw_tumour(rng, anatomy, templates)
    anatomy.set_mass_effect(tumour["centre"], tumour["mass_effect"], tumour["core_radius"] * 1.6)
    lesions = [tumour]
    if _SIMULATION["tumour"] and rng.uniform() < 0.15:  # multifocal: a satellite lesion
        lesions.append(_draw_tumour(rng, anatomy, templates, kind=tumour["kind"], satellite=True))

    # Anatomy: the template maps resampled onto this case's brain box.
    box = anatomy.brain_box(templates["mask"])
    coords = anatomy.template_coordinates(box)
    warped = np.zeros((len(templates["maps"]), *box.shape), dtype=np.float32)
    *tissue_maps, mask_map = templates["maps"]
    ndi.map_coordinates(mask_map, coords, output=warped[-1], order=1, mode="constant", cval=0.0)
    # The other maps were multiplied by the (non-negative) mask, so they are 0 wherever its
    # linear interpolation is 0 (every neighbour with a weight is 0): they are interpolated
    # only where it is not, about half the box. Each point is interpolated on its own, so
    # the values are the same as over the whole box.
    inside = np.flatnonzero(warped[-1])
    points = coords.reshape(3, -1)[:, inside]
    del coords
    for channel, template_map in enumerate(tissue_maps):
        warped[channel].ravel()[inside] = ndi.map_coordinates(
            template_map, points, order=1, mode="constant", cval=0.0)
    del points, inside
    t1_template, gm, wm, mask = warped
    brain = mask > 0.5
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    total = gm + wm + csf
    scale = np.where(total > 1e-3, 1.0 / np.maximum(total, 1e-3), 0.0).astype(np.float32)
    tissue = {"gm": gm * scale, "wm": wm * scale, "csf": csf * scale, "mask": mask}
    tissue["csf"][brain & (total <= 1e-3)] = 1.0

    all_labels = np.zeros(box.shape, dtype=np.uint8)
    all_strength = np.zeros(box.shape, dtype=np.float32)
    for lesion in lesions:
        lesion_box, labels, strength = _tumour_maps(rng, lesion, tissue, box)
        region = all_labels[lesion_box]
        # A core (1 or 3) wins over another lesion's edema; otherwise the first one stays.
        take = (labels > 0) & ((region == 0) | ((region == 2) & (labels != 2)))
        region[take] = labels[take]
        np.maximum(all_strength[lesion_box], strength, out=all_strength[lesion_box])
    all_strength[all_labels != 2] = 0.0
    rim = lost = None
    if _SIMULATION["skull_edge"] and rng.uniform() < 0.6:
        rim, lost = _skull_edge(rng, brain)
        head = (brain | rim) & ~lost
    else:
        head = brain
    all_labels[~head] = 0
    occupied = [np.flatnonzero(all_labels.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    tumour_slices = tuple(slice(max(int(o[0]) - 3, 0), min(int(o[-1]) + 4, n))
                          for o, n in zip(occupied, box.shape))
    tumour_labels = all_labels[tumour_slices].copy()
    edema_strength = all_strength[tumour_slices].copy()
    del all_strength

    confounder_maps = _confounders(rng, anatomy, templates, tumour, tissue, box)
    # Confounders never overlap the tumour: it would blur what the labels mean. They cover
    # few voxels, so they are kept as (flat index, weight) pairs.
    tumour_zone = np.zeros(box.shape, dtype=bool)
    tumour_zone[tumour_slices] = ndi.binary_dilation(tumour_labels > 0, iterations=3)
    confounders = {}
    for name, weights in confounder_maps.items():
        weights[tumour_zone] = 0.0
        flat = np.flatnonzero(weights > 0.02)
        confounders[name] = (flat, weights.ravel()[flat])
    del confounder_maps, tumour_zone

    # Soft (partial-volume) class fractions for the tumour classes.
    fractions = {}
    for name, code in (("necrosis", 1), ("et", 3)):
        fractions[name] = ndi.gaussian_filter((tumour_labels == code).astype(np.float32), 0.6)
    fractions["edema"] = ndi.gaussian_filter(edema_strength, 0.6)
    appearance = _SIMULATION["appearance"]
    texture_amplitude = rng.uniform(0.03, 0.15) if appearance else 0.07
    texture_scale = rng.uniform(1.5, 3.5) if appearance else 2.0
    texture = np.where(tumour_labels > 0,
                       1.0 + texture_amplitude * _smooth_noise(rng, tumour_labels.shape, texture_scale),
                       1.0)
    core_is_net = tumour["kind"] == "lgg"
    lesion_look = _SIMULATION["lesions"]
    if lesion_look:
        # Patchy enhancement: contrast uptake varies across the enhancing tissue, from full
        # to a fraction of it, in patches of about 1 cm (version 4).
        patchiness = rng.uniform(0.0, 0.3)
        uptake = 1.0 - np.float32(patchiness) * np.clip(
            0.5 + 0.5 * _smooth_noise(rng, tumour_labels.shape, 3.0), 0.0, 1.0)

    bias_axes = _bias_axes([np.float32(s) + where.astype(np.float32)
                            for s, where in zip(box.start, np.nonzero(head))])
    n_brain = bias_axes[0].size
    resolution = _SIMULATION["resolution"]
    thick_case = resolution and rng.uniform() < 0.5
    images = {}
    scanner = {}
    for modality in MODALITIES:
        values = _class_intensities(rng, modality, appearance, lesions=lesion_look)
        v = {name: np.float32(values[i]) for name, i in _CLASS_INDEX.items()}
        # v_wm wm + v_gm gm + v_csf csf, in place (box-sized arrays).
        image = np.multiply(v["wm"], tissue["wm"])
        scratch = np.multiply(v["gm"], tissue["gm"])
        image += scratch
        image += np.multiply(v["csf"], tissue["csf"], out=scratch)
        if modality == "t1":
            # Blend in the template's own T1 for realistic deep grey matter and texture.
            image *= 0.5
            image += np.multiply(0.5, t1_template, out=scratch)
        del scratch
        flat_image = image.ravel()
        for name, (flat, weights) in confounders.items():
            flat_image[flat] += weights * (v[name] - flat_image[flat])
        sub = image[tumour_slices]
        sub += fractions["edema"] * (v["edema"] - sub)
        sub += fractions["necrosis"] * ((v["net"] if core_is_net else v["necrosis"]) - sub)
        if lesion_look and modality == "t1ce":
            # Enhancing tissue is non-enhancing tumour plus the contrast it took up.
            sub += fractions["et"] * (v["net"] + uptake * (v["et"] - v["net"]) - sub)
        else:
            sub += fractions["et"] * (v["et"] - sub)
        sub *= texture
        if rim is not None:
            # Leftover dura, fat or CSF at the edge: anything from dark to bright.
            image[rim] = np.float32(rng.uniform(0.3, 1.5)) * (
                1.0 + 0.2 * rng.standard_normal(int(np.count_nonzero(rim)), dtype=np.float32))
        gamma = float(np.exp(rng.normal(0.0, 0.2))) if appearance else 1.0
        if gamma != 1.0:
            np.power(np.maximum(image, 0.0), np.float32(gamma), out=image)

        if resolution:
            in_plane = rng.uniform(0.3, 1.0)
            blur = (in_plane, in_plane, rng.uniform(0.4, 1.2))
        else:
            blur = (rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.8), rng.uniform(0.5, 1.3))
        image = ndi.gaussian_filter(image, blur, truncate=2.5)
        level = _SCANNER_LEVEL[modality] * rng.uniform(0.6, 1.6)
        noise = rng.uniform(0.015, 0.07) if resolution else rng.uniform(0.02, 0.045)
        sigma = np.float32(noise)
        thickness = None
        if thick_case and rng.uniform() < 0.75:
            # Thick axial slices upsampled to 1 mm: sharp in-plane, blurred along z. Noise
            # arises at acquisition, so it is added first and smoothed with the rest.
            thickness = rng.uniform(2.5, 6.5)
            # Rician magnitude noise: sqrt((image + sigma n1)^2 + (sigma n2)^2), in place.
            real = rng.standard_normal(image.shape, dtype=np.float32)
            real *= sigma
            real += image
            imaginary = rng.standard_normal(image.shape, dtype=np.float32)
            imaginary *= sigma
            np.multiply(real, real, out=real)
            np.multiply(imaginary, imaginary, out=imaginary)
            real += imaginary
            del imaginary
            np.sqrt(real, out=real)
            matrix = _thick_slice_matrix(box.shape[2], thickness, rng.uniform(0.0, thickness))
            np.matmul(real.reshape(-1, box.shape[2]), matrix.T, out=image.reshape(-1, box.shape[2]))
            del real
            values = image[head]
        else:
            values = image[head]
            real = values + sigma * rng.standard_normal(n_brain, dtype=np.float32)
            imaginary = sigma * rng.standard_normal(n_brain, dtype=np.float32)
            values = np.sqrt(real * real + imaginary * imaginary)  # Rician magnitude noise
        # Scanner effects, on brain voxels only (skull-stripped: the rest stays 0).
        bias_amplitude = rng.uniform(0.1, 0.5) if resolution else rng.uniform(0.15, 0.35)
        values *= _bias_field(rng, bias_amplitude, bias_axes)
        values *= np.float32(level)
        box_image = np.zeros(box.shape, dtype=np.int16)
        box_image[head] = np.clip(np.rint(values), 1, 32767)  # brain voxels never 0
        full = np.zeros(BRATS_SHAPE, dtype=np.int16)
        full[box.slices] = box_image
        images[modality] = full
        scanner[modality] = {"scale": round(float(level), 2), "noise": round(float(noise), 4),
                             "bias_amplitude": round(float(bias_amplitude), 3),
                             "blur_sigma_mm": [round(float(b), 3) for b in blur],
                             "gamma": round(gamma, 3),
                             "slice_thickness_mm": None if thickness is None else round(float(thickness), 2)}

    box_seg = np.zeros(box.shape, dtype=np.uint8)
    box_seg[tumour_slices] = np.where(tumour_labels == 3, 4, tumour_labels)  # BraTS: ET is 4
    box_seg[~head] = 0
    seg = np.zeros(BRATS_SHAPE, dtype=np.uint8)
    seg[box.slices] = box_seg

    volumes = {name: round(float(np.count_nonzero(box_seg == code)) / 1000.0, 2)
               for name, code in (("necrotic_core", 1), ("edema", 2), ("enhancing", 4))}
    parameters = {
        "case_index": index,
        "grade": "LGG" if tumour["kind"] == "lgg" else "HGG",
        "tumour_kind": tumour["kind"],
        "tumour_centre_voxel": [round(float(c), 1) for c in tumour["centre"]],
        "core_radius_mm": round(float(tumour["core_radius"]), 2),
        "edema_margin_mm": round(float(tumour["edema_margin"]), 2),
        "lesions": len(lesions),
        "volumes_ml": volumes,
        "confounder_voxels": {name: int(flat.size) for name, (flat, _) in confounders.items()},
        "anatomy_scale": [round(float(s), 4) for s in anatomy.scale],
        "anatomy_rotation_deg": [round(float(a), 2) for a in anatomy.angles_deg],
        "anatomy_warp_mm": round(anatomy.warp_mm, 2),
        "ventricle_enlargement": round(anatomy.ventricles, 3),
        "skull_strip_edge": rim is not None,
        "scanner": scanner,
    }
    if not return_maps:
        return images, seg, parameters
    confounder_masks = {}
    for name, (flat, weights) in confounders.items():
        mask_of = np.zeros(box.shape, dtype=bool)
        mask_of.ravel()[flat[weights > 0.5]] = True
        confounder_masks[name] = mask_of
    maps = {"slices": box.slices, "wm": tissue["wm"], "gm": tissue["gm"], "csf": tissue["csf"],
            "confounders": confounder_masks}
    return images, seg, parameters, maps



# -- writing ---------------------------------------------------------------------------------
def _write_nifti(array, path):
    """Write a .nii.gz with a fixed gzip timestamp, so the same voxels give the same bytes."""
    image = nib.Nifti1Image(array, BRATS_AFFINE)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(BRATS_AFFINE, code=1)
    image.set_sform(BRATS_AFFINE, code=1)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                                 mtime=0, filename="") as handle:
        handle.write(image.to_bytes())


def _write_text_atomic(path, text):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_case(out_dir, case_id, images, seg):
    """Write a case folder atomically: files go to a hidden folder that is renamed last."""
    final = out_dir / case_id
    # find_cases skips dot-folders, so a run killed here leaves nothing it would read.
    partial = out_dir / f".{case_id}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        for modality in MODALITIES:
            _write_nifti(images[modality], partial / f"{case_id}_{modality}.nii.gz")
        _write_nifti(seg, partial / f"{case_id}_seg.nii.gz")
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def _remove_stale_partials(out_dir):
    for leftover in out_dir.glob(f".{_CASE_PREFIX}*.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def synthesize(out_dir, n_cases=24, seed=0, progress=True, workers=None):
    """Write synthetic BraTS 2020-layout cases built on the MNI152 brain.

    Each case is written to ``out_dir/BraTS20_Synthetic_NNN/BraTS20_Synthetic_NNN_{flair,t1,
    t1ce,t2,seg}.nii.gz`` (240 x 240 x 155, 1 mm, int16 images, uint8 labels 0/1/2/4, the
    BraTS affine), atomically: an interrupted run leaves no half-written case that
    `find_cases` would read. ``name_mapping.csv`` (grade HGG or LGG per case, as BraTS 2020
    ships it), ``synthetic_parameters.json`` (seed, generator version, every case's
    parameters) and a ``README.txt`` are written beside the cases. A case takes a few
    seconds; the first one also loads the templates.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output folder (created if needed). Existing cases of the same name are replaced.
    n_cases : int, default=24
        Number of cases, numbered from 001.
    seed : int, default=0
        Dataset seed: the same seed writes identical voxels, and case ``k`` does not depend
        on `n_cases`.
    progress : bool, default=True
        Show a tqdm progress bar.
    workers : int, optional
        Cases generated at once, each in its own thread (the work is NumPy, SciPy and
        zlib, which mostly run without the GIL: two threads are 1.7x faster on two
        cores). Default=None: ``min(4, os.cpu_count())``. The cases do not depend on it.

    Returns
    -------
    list of pathlib.Path
        The case folders, in order.
    """
    if int(n_cases) < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out_dir)

    from .._progress_bar import progress_bar

    n_cases = int(n_cases)
    workers = max(1, min(int(workers or min(4, os.cpu_count() or 1)), n_cases))

    def make_case(index):
        case_id = f"{_CASE_PREFIX}{index + 1:03d}"
        images, seg, case_parameters = synthesize_case(seed, index)
        return _write_case(out_dir, case_id, images, seg), {"case_id": case_id, **case_parameters}

    with progress_bar(total=n_cases, desc="synthetic cases", unit="case", disable=not progress) as bar:
        # After an error or Ctrl-C no further case starts; those being written finish or
        # leave only a hidden partial folder (removed by the next run).
        made = map_in_threads(make_case, range(n_cases), workers, bar=bar, name="gliseg-synth")
    folders = [folder for folder, _ in made]
    parameters = [case_parameters for _, case_parameters in made]

    rows = [["Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID", "TCGA_TCIA_subject_ID",
             "BraTS_2019_subject_ID", "BraTS_2020_subject_ID"]]
    rows += [[p["grade"], "NA", "NA", "NA", "NA", p["case_id"]] for p in parameters]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    _write_text_atomic(out_dir / "name_mapping.csv", buffer.getvalue())
    _write_text_atomic(out_dir / _PARAMETERS_FILE, json.dumps({
        "generator": "gliseg_nb.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "n_cases": int(n_cases),
        "template": "MNI152 2009 symmetric 1 mm (nilearn): T1, grey and white matter, brain mask",
        "cases": parameters,
    }, indent=2) + "\n")
    _write_text_atomic(out_dir / "README.txt", (
        "Synthetic BraTS 2020-layout dataset written by gliseg-nb "
        f"(generator version {GENERATOR_VERSION}, seed {int(seed)}, {int(n_cases)} cases).\n"
        "Anatomy: the MNI152 brain bundled with nilearn; tumours, confounders and scanner\n"
        "effects are simulated. Not patient data; not for clinical use.\n"
        f"Regenerate with: gliseg-nb synth OUT --cases {int(n_cases)} --seed {int(seed)}\n"
        f"Per-case parameters: {_PARAMETERS_FILE}\n"))
    return folders


# -- the default dataset ------------------------------------------------------------------------


def get_data_dir(data_dir=None, n_cases=24, seed=0, progress=True):
    """The dataset folder the notebooks use: yours if you have one, else the synthetic set.

    In order of precedence:

    1. `data_dir`, if given (it must exist);
    2. the folder named by the environment variable ``GLISEG_NB_DATA`` (`DATA_ENV_VAR`),
       if set: point it at your BraTS download to run every notebook on real data;
    3. the synthetic dataset, generated on first use (a progress bar; about a minute for
       the default 24 cases on two idle cores, see ``docs/measured.json``) into ``$GLISEG_NB_CACHE/synthetic-v<version>-seed<seed>-n<n>``
       (default cache: pooch's OS cache folder for ``gliseg-nb``), then reused. A marker
       file written last tells a complete dataset from one interrupted mid-way, which is
       regenerated.

    Parameters
    ----------
    data_dir : str or pathlib.Path or None, default=None
        A folder holding BraTS cases in any layout `find_cases` reads.
    n_cases : int, default=24
        Number of synthetic cases (only when the synthetic set is used).
    seed : int, default=0
        Seed of the synthetic set.
    progress : bool, default=True
        Show a progress bar while generating.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        If `data_dir` or ``$GLISEG_NB_DATA`` names a folder that does not exist.
    """
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DataError(f"{data_dir}: data folder does not exist")
        return data_dir
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: folder named by ${DATA_ENV_VAR} does not exist; "
                            f"unset {DATA_ENV_VAR} to use the synthetic dataset")
        return path

    root = cache_root()
    target = root / f"synthetic-v{GENERATOR_VERSION}-seed{int(seed)}-n{int(n_cases)}"
    if (target / _COMPLETE_MARKER).is_file():
        return target
    # Generate beside the target and rename it into place, so that two notebooks started
    # at once, or an interrupted run, never leave a half dataset under the final name.
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        synthesize(partial, n_cases=n_cases, seed=seed, progress=progress)
        (partial / _COMPLETE_MARKER).write_text(f"generator_version={GENERATOR_VERSION}\n")
        if target.exists() and not (target / _COMPLETE_MARKER).is_file():
            shutil.rmtree(target)  # an incomplete dataset from an older layout of the cache
        try:
            os.rename(partial, target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():
                raise
            # Another process finished first: its copy is identical (same seed).
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


# -- calibration ------------------------------------------------------------------------------------
def threshold_baseline(data, modality="flair", thresholds=None):
    """The best single global threshold on z-scored images, and the whole-tumour Dice it gets.

    Each case's image is z-scored over its brain (non-zero) voxels, then every voxel above
    the threshold is called tumour. One threshold is chosen for all cases, the one that
    maximises the mean per-case Dice of the whole tumour (labels 1+2+3). This is the
    difficulty yardstick of the synthetic set (about 0.55-0.8, like simple intensity methods
    on real BraTS) and a baseline any trained model should beat. Measured on the 24 cases of
    seed 0: generator version 3, threshold 1.3, mean Dice 0.65; version 4, threshold 1.3,
    mean Dice 0.74 (real scans: docs/benchmarks.md, "Transfer to real scans").

    Parameters
    ----------
    data : str or pathlib.Path or sequence of Case or CaseData
        A dataset folder (read with `find_cases`), cases, or loaded cases (which must hold
        `modality` and labels).
    modality : str, default="flair"
        The image thresholded.
    thresholds : array-like or None, default=None
        Candidate thresholds in z-score units; None tries -1 to 5 in steps of 0.05.

    Returns
    -------
    dict
        ``threshold`` (float), ``mean_dice`` (mean per-case Dice at that threshold),
        ``per_case_dice`` (dict case_id -> Dice), ``case_ids``.
    """
    from .cases import Case, find_cases
    from .loading import CaseData, load_case

    if thresholds is None:
        thresholds = np.round(np.arange(-1.0, 5.0001, 0.05), 4)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if isinstance(data, (str, os.PathLike)):
        data = find_cases(data)
    curves, case_ids = [], []
    for item in data:
        if isinstance(item, Case):
            item = load_case(item, modalities=[modality])
        if not isinstance(item, CaseData):
            raise TypeError(f"threshold_baseline expects a folder, Cases or CaseData, "
                            f"got {type(item).__name__}")
        if item.labels is None:
            raise DataError(f"{item.case.case_id}: no segmentation, cannot score a threshold")
        curves.append(_dice_curve(item.images[modality], item.labels > 0, thresholds))
        case_ids.append(item.case.case_id)
    if not curves:
        raise DataError("threshold_baseline: no case given")
    curves = np.stack(curves)
    best = int(np.argmax(curves.mean(axis=0)))
    return {
        "threshold": float(thresholds[best]),
        "mean_dice": float(curves[:, best].mean()),
        "per_case_dice": {cid: float(d) for cid, d in zip(case_ids, curves[:, best])},
        "case_ids": case_ids,
    }


def _dice_curve(image, tumour, thresholds):
    """Whole-tumour Dice of ``zscore(image) > t`` for every t (brain = non-zero voxels)."""
    brain = image != 0
    values = image[brain].astype(np.float64)
    z = (values - values.mean()) / (values.std() + 1e-8)
    truth = tumour[brain]
    # Counting voxels above each threshold through sorted values: one pass per case.
    tumour_z = np.sort(z[truth])
    other_z = np.sort(z[~truth])
    true_positive = tumour_z.size - np.searchsorted(tumour_z, thresholds, side="right")
    false_positive = other_z.size - np.searchsorted(other_z, thresholds, side="right")
    denominator = tumour_z.size + true_positive + false_positive
    return np.where(denominator > 0, 2.0 * true_positive / np.maximum(denominator, 1), 1.0)
