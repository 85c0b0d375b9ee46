"""The slice viewers: the state driven directly, then the widget callbacks."""

from types import SimpleNamespace

import numpy as np
import pytest

from gliseg_nb.viewers import CaseViewer, ComparisonViewer, ViewerState

# A deliberately non-cubic volume so that every axis has its own length.
SHAPE = (10, 12, 8)


def make_case(rng, affine=None, with_labels=True):
    """A stand-in for gliseg_nb.data.CaseData: the attributes the viewers read."""
    images = {name: rng.normal(100.0, 10.0, SHAPE).astype(np.float32)
              for name in ("t1", "flair", "t1ce", "t2")}
    labels = None
    if with_labels:
        labels = np.zeros(SHAPE, dtype=np.uint8)
        labels[2:5, 6:9, 1:4] = 2   # edema
        labels[3, 7, 2] = 3         # one enhancing voxel
    return SimpleNamespace(
        images=images,
        labels=labels,
        affine=np.eye(4) if affine is None else affine,
        zooms=(1.0, 1.0, 1.0),
        slices=slice(0, SHAPE[2]),
        case=SimpleNamespace(case_id="case_001"),
    )


@pytest.fixture
def case(rng):
    return make_case(rng)


# -- the state ------------------------------------------------------------------------------------
def test_starts_at_the_tumour_centre_with_flair(case):
    state = ViewerState.from_case(case)
    # Bounding box x 2-4, y 6-8, z 1-3: centre (3, 7, 2).
    assert state.cursor == (3, 7, 2)
    assert state.slice_index == 2
    assert state.modality == "flair"
    assert list(state.images) == ["flair", "t1", "t1ce", "t2"]


def test_starts_at_the_volume_centre_without_tumour(rng):
    state = ViewerState.from_case(make_case(rng, with_labels=False))
    assert state.cursor == (5, 6, 4)


@pytest.mark.parametrize(
    "plane, expected_shape, expected_slices",
    [("axial", (12, 10), 8), ("coronal", (8, 10), 12), ("sagittal", (8, 12), 10)],
)
def test_plane_shapes(case, plane, expected_shape, expected_slices):
    state = ViewerState.from_case(case)
    state.set_plane(plane)
    # Rows x columns: axial (Y, X), coronal (Z, X), sagittal (Z, Y).
    assert state.image_slice().shape == expected_shape
    assert state.label_slice().shape == expected_shape
    assert state.n_slices == expected_slices


def test_slice_index_is_clamped(case):
    state = ViewerState.from_case(case)
    state.slice_index = 1000
    assert state.slice_index == SHAPE[2] - 1
    state.slice_index = -5
    assert state.slice_index == 0
    state.set_plane("coronal")
    state.slice_index = 99
    assert state.slice_index == SHAPE[1] - 1


def test_plane_switch_keeps_the_point_in_view(case):
    state = ViewerState.from_case(case)
    state.slice_index = 5            # axial: z = 5
    state.set_plane("sagittal")
    assert state.slice_index == 3    # the cursor's x
    state.slice_index = 0
    assert state.set_plane("axial") == 5
    state.set_plane("coronal", recentre=True)
    assert state.cursor == (3, 7, 2)


def test_invalid_settings_raise(case):
    state = ViewerState.from_case(case)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="opacity"):
            state.opacity = bad
    state.opacity = 1.0
    assert state.opacity == 1.0
    with pytest.raises(ValueError, match="plane"):
        state.plane = "oblique"
    with pytest.raises(ValueError, match="modality"):
        state.modality = "dwi"
    with pytest.raises(ValueError, match="convention"):
        state.convention = "upside-down"
    with pytest.raises(ValueError, match="opacity"):
        ViewerState.from_case(case, opacity=2)


def test_mismatched_shapes_are_refused(case):
    with pytest.raises(ValueError, match="labels shape"):
        ViewerState(images=case.images, labels=np.zeros((2, 2, 2), np.uint8))


def test_axial_orientation_anterior_up_left_on_left():
    volume = np.zeros((4, 5, 3), np.float32)
    volume[0, 4, 1] = 1.0  # far left (small x), most anterior (large y), RAS+ identity affine
    state = ViewerState(images={"flair": volume}, cursor=(0, 0, 1))
    shown = state.image_slice()
    assert shown[0, 0] == 1.0          # top-left in the neurological convention
    state.convention = "radiological"
    assert state.image_slice()[0, -1] == 1.0
    assert state.orientation_labels() == ("R", "L", "A", "P")


def test_from_case_flips_an_lps_volume_to_ras(rng):
    # BraTS files store x and y reversed (affine diagonal -1, -1, 1).
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    case = make_case(rng, affine=lps)
    state = ViewerState.from_case(case)
    np.testing.assert_array_equal(state.images["flair"], case.images["flair"][::-1, ::-1, :])
    np.testing.assert_array_equal(state.labels, case.labels[::-1, ::-1, :])


def test_label_slice_of_the_prediction(case):
    prediction = np.zeros(SHAPE, np.uint8)
    state = ViewerState.from_case(case, prediction=prediction)
    assert state.label_slice("prediction").max() == 0
    assert state.label_slice("labels").max() == 3
    with pytest.raises(ValueError, match="source"):
        state.label_slice("guess")


def test_display_range_covers_the_brain(case):
    state = ViewerState.from_case(case)
    low, high = state.display_range()
    assert 60 < low < 100 < high < 140


# -- the widgets ----------------------------------------------------------------------------------
def test_controls_write_into_the_state_and_redraw(case):
    viewer = CaseViewer(case)
    assert viewer.redraw_count == 1                  # drawn once when made
    viewer.slice_slider.value = 6
    assert viewer.state.slice_index == 6
    assert viewer.redraw_count == 2
    viewer.modality_dropdown.value = "t2"
    assert viewer.state.modality == "t2"
    viewer.overlay_checkbox.value = False
    assert viewer.state.overlay is False
    viewer.opacity_slider.value = 0.8
    assert viewer.state.opacity == pytest.approx(0.8)
    assert viewer.redraw_count == 5


def test_plane_dropdown_resizes_the_slider_with_one_redraw(case):
    viewer = CaseViewer(case)
    before = viewer.redraw_count
    viewer.plane_dropdown.value = "coronal"
    assert viewer.state.plane == "coronal"
    assert viewer.slice_slider.max == SHAPE[1] - 1
    assert viewer.slice_slider.value == viewer.state.slice_index == 7
    assert viewer.redraw_count == before + 1


def test_static_figure_draws_image_and_overlay(case):
    viewer = CaseViewer(case)
    figure = viewer.static_figure()
    axes = figure.axes[0]
    assert len(axes.images) == 2                     # the MRI and the labels over it
    viewer.overlay_checkbox.value = False
    assert len(viewer.static_figure().axes[0].images) == 1
    assert "case_001" in figure._suptitle.get_text()
    assert [t.get_text() for t in figure.legends[0].get_texts()][0].startswith("1:")


def test_comparison_viewer_shares_one_state(case):
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[2:4, 6:8, 1:3] = 2
    viewer = ComparisonViewer(case, prediction)
    figure = viewer.static_figure()
    assert [ax.get_title() for ax in figure.axes[:2]] == ["ground truth", "prediction"]
    viewer.slice_slider.value = 0
    assert viewer.state.slice_index == 0
    with pytest.raises(ValueError, match="prediction"):
        ComparisonViewer(case)


def test_text_fallback_names_the_viewer(case):
    bundle = CaseViewer(case)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("CaseViewer of case_001: an interactive view")


def test_redraw_after_code_changes_brings_the_controls_in_line(case):
    viewer = CaseViewer(case)
    viewer.state.set_plane("sagittal")
    viewer.state.slice_index = 9
    viewer.state.modality = "t1"
    viewer.state.opacity = 0.2
    before = viewer.redraw_count
    viewer.redraw()
    assert viewer.redraw_count == before + 1        # syncing the controls drew nothing extra
    assert viewer.plane_dropdown.value == "sagittal"
    assert (viewer.slice_slider.max, viewer.slice_slider.value) == (SHAPE[0] - 1, 9)
    assert viewer.modality_dropdown.value == "t1"
    assert viewer.opacity_slider.value == pytest.approx(0.2)


def test_viewer_draws_into_its_output_widget_in_a_real_kernel(tmp_path, monkeypatch):
    """In a kernel, the controls redraw and the Output widget holds one fresh PNG."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    from layout_fixtures import write_layout

    write_layout(tmp_path / "data", "brats2021", n_cases=1, shape=(32, 40, 24))
    monkeypatch.setenv("GLISEG_NB_DATA", str(tmp_path / "data"))
    notebook = new_notebook(cells=[
        new_code_cell(
            "import os\n"
            "from gliseg_nb.data import find_cases, load_case\n"
            "from gliseg_nb.viewers import CaseViewer\n"
            "viewer = CaseViewer(load_case(find_cases(os.environ['GLISEG_NB_DATA'])[0]))\n"
            "viewer"
        ),
        new_code_cell(
            "viewer.plane_dropdown.value = 'sagittal'\n"
            "viewer.slice_slider.value = 3\n"
            "print(viewer.redraw_count, viewer.state.plane, viewer.state.slice_index)"
        ),
    ])
    NotebookClient(notebook, timeout=120, kernel_name="python3", store_widget_state=True).execute()
    assert notebook.cells[1].outputs[0]["text"] == "3 sagittal 3\n"
    widget_state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (output_model,) = [m for m in widget_state.values() if m["model_name"] == "OutputModel"]
    # clear_output(wait=True) before each draw: one picture, not one per redraw.
    assert [list(o["data"]) for o in output_model["state"]["outputs"]] == [["image/png", "text/plain"]]
