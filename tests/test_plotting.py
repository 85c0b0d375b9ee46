"""Static figures of a case: orientation, default slice, colours, files written."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gliseg_nb.cli import main  # noqa: E402
from gliseg_nb.data import DataError, find_cases, load_case  # noqa: E402
from gliseg_nb.labels import CLASS_COLORS  # noqa: E402
from gliseg_nb.plotting import (  # noqa: E402
    axial_display,
    mark_sides,
    plot_case,
    plot_case_gallery,
    save_case_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def case_data(synthetic_dataset):
    return load_case(find_cases(synthetic_dataset)[0])


def test_axial_display_puts_anterior_up_and_patient_right_on_the_left():
    # A slice with a marker at the patient's right-anterior corner, stored two ways.
    lps = np.zeros((4, 3))
    lps[0, 0] = 1  # LPS: index 0 along x is the patient's right, along y anterior
    ras = np.zeros((4, 3))
    ras[3, 2] = 1  # RAS: the last index along x is the right, along y the front
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    ras_affine = np.eye(4)
    for picture in (axial_display(lps, lps_affine), axial_display(ras, ras_affine),
                    axial_display(lps)):
        assert picture.shape == (3, 4)  # rows: front to back; columns: right to left
        assert picture[0, 0] == 1


def test_plot_case_draws_four_modalities_and_labels_on_the_tumour_slice(case_data):
    figure = plot_case(case_data)
    try:
        axes = figure.axes
        assert len(axes) == 5
        titles = [axis.get_title() for axis in axes]
        assert titles[:4] == ["FLAIR", "T1", "T1ce (contrast)", "T2"]
        assert "labels" in titles[4]
        expected = int(np.argmax((case_data.labels > 0).sum(axis=(0, 1))))
        assert figure._suptitle.get_text().endswith(f"slice {expected}")
        # The overlay holds the tumour classes of that slice, drawn in the report's colours.
        overlay = axes[4].images[1]
        shown = np.unique(np.ma.compressed(overlay.get_array()))
        assert set(shown) <= {1, 2, 3} and 2 in shown
        rgba = overlay.cmap(overlay.norm(2))
        np.testing.assert_allclose(rgba[:3], CLASS_COLORS[2])
        assert all(_side_letters(axis) == ("R", "L") for axis in axes[:5])
        legend_texts = [t.get_text() for t in axes[4].get_legend().get_texts()]
        assert any("edema" in text for text in legend_texts)
    finally:
        plt.close(figure)


@pytest.mark.slow
def test_plot_case_accepts_a_case_and_given_axes(synthetic_dataset):
    case = find_cases(synthetic_dataset)[2]
    figure, axes = plt.subplots(2, 3)
    try:
        returned = plot_case(case, slice_index=80, axes=axes)
        assert returned is figure
        assert figure._suptitle.get_text().endswith("slice 80")
        assert len(axes.ravel()[0].images) == 1
    finally:
        plt.close(figure)


def test_plot_case_rejects_a_slice_outside_the_volume(case_data):
    with pytest.raises(ValueError, match="slice 155"):
        plot_case(case_data, slice_index=155)


@pytest.mark.slow
def test_save_case_figure_writes_a_png(synthetic_dataset, tmp_path):
    out = save_case_figure(synthetic_dataset, tmp_path / "figures" / "case.png",
                           case_id="BraTS20_Synthetic_002")
    assert out == tmp_path / "figures" / "case.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.parent.iterdir()) == ["case.png"]  # no temporary file


@pytest.mark.slow
def test_save_case_figure_names_an_unknown_case(synthetic_dataset, tmp_path):
    with pytest.raises(DataError, match="no case 'BraTS20_Synthetic_999'"):
        save_case_figure(synthetic_dataset, tmp_path / "x.png", case_id="BraTS20_Synthetic_999")


@pytest.mark.slow
def test_show_command(synthetic_dataset, tmp_path, capsys):
    out = tmp_path / "show.png"
    assert main(["show", str(synthetic_dataset), "--out", str(out), "--slice", "70"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert str(out) in capsys.readouterr().out
    assert main(["show", str(synthetic_dataset), "--out", str(out), "--case", "nope"]) == 2
    assert "no case 'nope'" in capsys.readouterr().err


def _score_rows(rng, n_cases):
    return [{"case_id": f"case{i}", "scores": {region: {"dice": float(value)} for region, value
                                                  in zip(("WT", "TC", "ET"), rng.uniform(0, 1, size=3))}}
            for i in range(n_cases)]


def test_plot_region_scores_draws_a_box_per_region_in_its_colour_and_every_case(rng, tmp_path):
    from gliseg_nb.labels import REGION_COLORS
    from gliseg_nb.plotting import plot_region_scores

    rows = _score_rows(rng, 9)
    figure = plot_region_scores(rows, path=tmp_path / "boxes.png")
    try:
        ax = figure.axes[0]
        boxes = [patch for patch in ax.patches]
        assert len(boxes) == 3
        for patch, region in zip(boxes, ("WT", "TC", "ET")):
            assert np.allclose(patch.get_facecolor()[:3], REGION_COLORS[region])
        # One dot per case and region, at the case's value.
        dots = [collection.get_offsets() for collection in ax.collections]
        assert [len(d) for d in dots] == [9, 9, 9]
        assert np.allclose(np.sort(dots[2][:, 1]), np.sort([row["scores"]["ET"]["dice"] for row in rows]))
        # The median line of each box sits at the median of its region.
        horizontal = [line.get_ydata()[0] for line in ax.lines
                      if len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]]
        for region in ("WT", "TC", "ET"):
            median = np.median([row["scores"][region]["dice"] for row in rows])
            assert np.isclose(horizontal, median).any(), region
        assert "9 cases" in ax.get_title()
    finally:
        plt.close(figure)
    assert (tmp_path / "boxes.png").read_bytes()[:8] == PNG_MAGIC
    assert REGION_COLORS["WT"] == CLASS_COLORS[2] and REGION_COLORS["ET"] == CLASS_COLORS[3]


def test_plot_region_scores_refuses_no_rows_and_a_missing_metric(rng):
    from gliseg_nb.plotting import plot_region_scores

    with pytest.raises(ValueError, match="no scores"):
        plot_region_scores([])
    with pytest.raises(ValueError, match="hd95"):
        plot_region_scores(_score_rows(rng, 3), metric="hd95")


# -- plot_case_gallery: several cases side by side ---------------------------------------------
@pytest.fixture(scope="module")
def small_cases(tmp_path_factory):
    """Three tiny cases in the BraTS 2020 layout (fast: no synthetic generation)."""
    from layout_fixtures import write_layout

    root = write_layout(tmp_path_factory.mktemp("gallery"), "brats2020", n_cases=3,
                        shape=(40, 48, 30))
    return find_cases(root)


def _outline_colours(axis):
    """The RGB colours of the contour lines drawn on an axis."""
    colours = set()
    for collection in axis.collections:
        for rgba in np.atleast_2d(collection.get_edgecolor()):
            colours.add(tuple(np.round(rgba[:3], 3)))
    return colours


def test_gallery_cuts_each_case_through_its_tumour_and_outlines_classes_in_their_colours(small_cases):
    figure = plot_case_gallery(small_cases, modalities=("flair", "t1ce"),
                               titles=["a", "b", "c"])
    try:
        assert len(figure.axes) == 6  # 2 modalities x 3 cases
        expected_colours = {tuple(np.round(CLASS_COLORS[c], 3)) for c in (1, 2, 3)}
        for column, case in enumerate(small_cases):
            labels = load_case(case, modalities=[]).labels
            tumour_slice = int(np.argmax(np.count_nonzero(labels, axis=(0, 1))))
            top = figure.axes[column]
            assert top.get_title().splitlines() == ["abc"[column], f"slice {tumour_slice}"]
            classes_there = {int(c) for c in np.unique(labels[:, :, tumour_slice])} - {0}
            assert classes_there  # the fixture has tumour in that slice
            drawn = _outline_colours(top)
            assert drawn <= expected_colours
            assert drawn == {tuple(np.round(CLASS_COLORS[c], 3)) for c in classes_there}
            # The picture is the stored slice turned to display order (anterior up).
            flair = load_case(case, modalities=["flair"]).images["flair"][:, :, tumour_slice]
            shown = top.images[0].get_array()
            assert shown.shape == (flair.shape[1], flair.shape[0])
        assert figure.axes[0].get_ylabel() == "FLAIR"
        assert figure.axes[3].get_ylabel() == "T1ce (contrast)"
        for axis in figure.axes:  # every picture says which side is the patient's right
            assert _side_letters(axis) == ("R", "L")
    finally:
        plt.close(figure)


def test_gallery_accepts_loaded_cases_and_default_titles(small_cases):
    loaded = [load_case(case, modalities=["flair"]) for case in small_cases[:2]]
    figure = plot_case_gallery(loaded, modalities=["flair"])
    try:
        assert len(figure.axes) == 2
        assert figure.axes[1].get_title().startswith(small_cases[1].case_id)
    finally:
        plt.close(figure)


def test_gallery_rejects_bad_arguments(small_cases):
    with pytest.raises(ValueError, match="at least one case"):
        plot_case_gallery([])
    with pytest.raises(ValueError, match="subset of"):
        plot_case_gallery(small_cases, modalities=["dwi"])
    with pytest.raises(ValueError, match="2 given for 3 cases"):
        plot_case_gallery(small_cases, titles=["a", "b"])
    with pytest.raises(DataError, match="not loaded"):
        plot_case_gallery([load_case(small_cases[0], modalities=["t1"])], modalities=["flair"])


def _side_letters(axis):
    """The letters written at the left and right edges of `axis` (axes coordinates)."""
    letters = {text.get_position()[0]: text.get_text() for text in axis.texts
               if text.get_text() in ("L", "R")}
    return tuple(letters[x] for x in sorted(letters))


@pytest.mark.parametrize("convention, expected", [("radiological", ("R", "L")),
                                                  ("neurological", ("L", "R"))])
def test_mark_sides_writes_the_patient_side_at_each_edge(convention, expected):
    figure, axis = plt.subplots()
    try:
        assert mark_sides(axis, convention) == expected
        assert _side_letters(axis) == expected
    finally:
        plt.close(figure)


def test_mark_sides_rejects_an_unknown_convention():
    figure, axis = plt.subplots()
    try:
        with pytest.raises(ValueError, match="convention must be one of"):
            mark_sides(axis, "mirror")
    finally:
        plt.close(figure)
