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


# -- linked planes: the cursor seen from each plane, clicks and keys ----------------------------
PLANE_NAMES = ("axial", "coronal", "sagittal")


@pytest.mark.parametrize("convention", ["neurological", "radiological"])
@pytest.mark.parametrize("plane", PLANE_NAMES)
def test_a_click_moves_the_cursor_to_the_voxel_drawn_there(rng, plane, convention):
    # Every voxel distinct, so reading the picture back identifies the voxel exactly.
    volume = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    state = ViewerState(images={"flair": volume}, cursor=(4, 5, 6), convention=convention)
    before = state.slice_index_in(plane)
    picture = state.image_slice(plane=plane)
    for row, column in [(0, 0), (picture.shape[0] - 1, 2), (3, picture.shape[1] - 1)]:
        cursor = state.move_to(plane, row, column)
        assert volume[cursor] == picture[row, column]
        assert state.slice_index_in(plane) == before          # the clicked plane stays put
        assert state.cursor_in_plane(plane) == (row, column)  # and the crosshair is there


def test_planes_are_linked_through_the_cursor(case):
    state = ViewerState.from_case(case)
    state.move_to("axial", row=1, column=8)        # axial rows run A->P: y = 12 - 1 - 1
    assert state.cursor == (8, 10, 2)
    assert state.slice_index_in("sagittal") == 8   # the other planes now go through it
    assert state.slice_index_in("coronal") == 10
    # In the coronal picture, the cursor sits at column x and row (top = superior) Z-1-z.
    assert state.cursor_in_plane("coronal") == (SHAPE[2] - 1 - 2, 8)
    assert state.cursor_in_plane("sagittal") == (SHAPE[2] - 1 - 2, 10)


def test_a_click_outside_the_picture_is_clamped(case):
    state = ViewerState.from_case(case)
    assert state.move_to("sagittal", row=-4, column=500) == (state.cursor[0], SHAPE[1] - 1, SHAPE[2] - 1)


def test_key_steps_stop_at_the_ends(case):
    state = ViewerState.from_case(case)
    assert state.step(1) == 3                       # axial from z = 2
    assert state.step(100) == SHAPE[2] - 1
    assert state.step(-100) == 0
    assert state.step(-1) == 0
    assert state.step(2, plane="sagittal") == 5     # x from 3, the axial slice unchanged
    assert state.slice_index == 0


def test_voxel_values_and_readout_under_the_cursor(rng):
    case = make_case(rng, affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    prediction = np.zeros(SHAPE, np.uint8)
    state = ViewerState.from_case(case, prediction=prediction)
    state.cursor = (SHAPE[0] - 1 - 3, SHAPE[1] - 1 - 7, 2)   # the enhancing voxel, flipped to RAS
    values = state.voxel_values()
    assert values["labels"] == 3 and values["prediction"] == 0
    assert values["images"]["t1ce"] == pytest.approx(float(case.images["t1ce"][3, 7, 2]))
    assert state.file_voxel() == (3, 7, 2)          # named as indexed in the file
    line = state.readout()
    assert "(3, 7, 2)" in line and "label 3 (enhancing tumour)" in line
    assert "predicted 0 (not tumour)" in line
    assert f"FLAIR {case.images['flair'][3, 7, 2]:.4g}" in line


def test_picture_has_the_crosshair_with_a_gap_at_the_cursor(case):
    from gliseg_nb.viewers import CROSSHAIR_COLOR, plane_picture

    state = ViewerState.from_case(case, overlay=False)
    picture = plane_picture(state, "coronal", pixels_per_mm=10)
    assert picture.shape == (SHAPE[2] * 10, SHAPE[0] * 10, 3)
    row, column = state.cursor_in_plane("coronal")
    y, x = row * 10 + 5, column * 10 + 5
    cyan = np.array(CROSSHAIR_COLOR) * 255
    # Far from the cursor, on its row and on its column: mostly crosshair colour.
    for pixel in (picture[y, 0], picture[y, -1], picture[0, x], picture[-1, x]):
        assert np.abs(pixel.astype(float) - cyan).max() < 0.35 * 255
    assert not np.array_equal(picture[y, x], picture[y, 0])   # the voxel itself is left clear
    plain = plane_picture(state, "coronal", pixels_per_mm=10, crosshair=False)
    assert (plain[:, :, 0] == plain[:, :, 2]).all()            # grey only: no overlay, no cross


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


def test_static_figure_draws_the_overlay_and_a_legend_that_fits(case):
    viewer = CaseViewer(case)
    figure = viewer.static_figure()
    (ax,) = figure.axes
    with_labels = ax.images[0].get_array().copy()
    viewer.overlay_checkbox.value = False
    without_labels = viewer.static_figure().axes[0].images[0].get_array()
    assert with_labels.shape == without_labels.shape
    assert (with_labels != without_labels).any()     # the tumour is tinted, or not
    assert "case_001" in figure._suptitle.get_text()
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert texts[0].startswith("1:") and texts[-1] == "3: enhancing tumour"
    # The legend must fit in the picture at the dpi the notebooks save and show.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure.set_dpi(80)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    box = figure.legends[0].get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width


def test_static_figure_of_all_planes_has_a_panel_each(case):
    viewer = CaseViewer(case)
    figure = viewer.static_figure("all")
    titles = [ax.get_title() for ax in figure.axes]
    assert [t.split()[0] for t in titles] == ["axial", "coronal", "sagittal"]
    with pytest.raises(ValueError, match="plane"):
        viewer.static_figure(["oblique"])


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


def test_display_bundle_has_the_widget_a_picture_and_text(case):
    viewer = CaseViewer(case)
    bundle = viewer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.widget.model_id
    # Static pages show this picture of the current view instead of dead controls.
    assert bundle["image/png"].startswith(b"\x89PNG")
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


def test_viewer_draws_its_pictures_in_a_real_kernel(tmp_path, monkeypatch):
    """In a kernel, the controls redraw and the display carries a PNG for static pages."""
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
    # The displayed output carries the widget view and a PNG for static pages.
    assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= set(
        notebook.cells[0].outputs[0]["data"])
    widget_state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    images = [m for m in widget_state.values() if m["model_name"] == "ImageModel"]
    assert len(images) == 3                          # axial, coronal, sagittal


def _click_event(viewer, panel, row, column):
    """The event ipyevents sends for a click on the centre of slice pixel (row, column)."""
    height, width = panel.picture_shape
    n_rows, n_columns = viewer.state.slice_shape(panel.plane or viewer.state.plane)
    return {"type": "click", "dataX": (column + 0.5) * width / n_columns,
            "dataY": (row + 0.5) * height / n_rows}


def test_case_viewer_shows_three_planes_filling_its_width(case):
    viewer = CaseViewer(case, width=600)
    assert [panel.plane for panel in viewer.panels] == list(PLANE_NAMES)
    widths = [panel.picture_shape[1] for panel in viewer.panels]
    assert 600 - 40 <= sum(widths) <= 600
    assert viewer.slice_slider.continuous_update is True


def test_clicking_a_picture_moves_the_cursor_and_makes_its_plane_current(case):
    viewer = CaseViewer(case)
    sagittal = viewer.panels[2]
    before = viewer.redraw_count
    assert viewer.handle_event(sagittal, _click_event(viewer, sagittal, row=1, column=4))
    assert viewer.state.cursor == (3, 4, SHAPE[2] - 1 - 1)
    assert viewer.state.plane == "sagittal"
    assert (viewer.plane_dropdown.value, viewer.slice_slider.value) == ("sagittal", 3)
    assert viewer.redraw_count == before + 1
    assert "(3, 4, 6)" in viewer.readout.value


def test_keys_step_the_picture_under_the_mouse(case):
    viewer = CaseViewer(case)
    coronal = viewer.panels[1]
    assert viewer.handle_event(coronal, {"type": "keydown", "key": "ArrowUp"})
    assert viewer.state.plane == "coronal" and viewer.state.cursor[1] == 8
    viewer.handle_event(coronal, {"type": "keydown", "key": "j"})
    viewer.handle_event(coronal, {"type": "keydown", "key": "j"})
    assert viewer.slice_slider.value == 6
    viewer.handle_event(coronal, {"type": "keydown", "key": "PageUp"})
    assert viewer.state.cursor[1] == SHAPE[1] - 1
    before = viewer.redraw_count
    assert not viewer.handle_event(coronal, {"type": "keydown", "key": "q"})
    assert viewer.redraw_count == before


def test_each_redraw_changes_the_pictures(case):
    viewer = CaseViewer(case)
    first = [panel.image.value for panel in viewer.panels]
    viewer.slice_slider.value = 0                    # axial slice 2 -> 0
    second = [panel.image.value for panel in viewer.panels]
    # The axial picture shows another slice; the other two move their crosshair.
    assert all(a != b for a, b in zip(first, second))


def test_comparison_viewer_follows_the_plane_and_reads_both_labels(case):
    prediction = np.zeros(SHAPE, np.uint8)
    viewer = ComparisonViewer(case, prediction)
    assert [panel.heading for panel in viewer.panels] == ["ground truth", "prediction"]
    viewer.plane_dropdown.value = "coronal"
    assert all(panel.picture_shape[0] < panel.picture_shape[1] for panel in viewer.panels)
    truth = viewer.panels[0]
    viewer.handle_event(truth, _click_event(viewer, truth, row=SHAPE[2] - 1 - 2, column=3))
    assert viewer.state.cursor == (3, 7, 2)
    assert "label 3" in viewer.readout.value and "predicted 0" in viewer.readout.value


def test_view_3d_says_what_to_install_without_ipyniivue(case, monkeypatch):
    import sys

    from gliseg_nb.viewers import view_3d

    monkeypatch.setitem(sys.modules, "ipyniivue", None)     # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'gliseg-nb\[3d\]'"):
        view_3d(case)


def test_view_3d_loads_the_image_the_labels_and_the_prediction(case):
    import nibabel as nib  # ipyniivue itself comes with the test extra

    from gliseg_nb.viewers import view_3d

    case.slices = slice(5, 5 + SHAPE[2])
    prediction = np.zeros(SHAPE, np.uint8)
    viewer = view_3d(case, prediction=prediction, modality="t1ce")
    assert [v.name for v in viewer.volumes] == ["t1ce.nii", "labels.nii", "prediction.nii"]
    labels = nib.Nifti1Image.from_bytes(viewer.volumes[1].data)
    np.testing.assert_array_equal(np.asarray(labels.dataobj), case.labels)
    assert labels.affine[2, 3] == pytest.approx(5.0)           # origin moved to the first loaded slice
    assert viewer.volumes[1].colormap_label.labels[3] == "enhancing tumour"
    with pytest.raises(ValueError, match="modality"):
        view_3d(case, modality="dwi")


def test_without_ipyevents_the_controls_still_work_and_say_what_is_missing(case, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipyevents", None)     # as if not installed
    viewer = CaseViewer(case)
    assert viewer.events_available is False
    assert "pip install ipyevents" in viewer.widget.children[-1].value
    viewer.slice_slider.value = 0
    assert viewer.state.slice_index == 0


def test_pictures_listen_to_clicks_and_keys(case):
    viewer = CaseViewer(case)
    assert viewer.events_available is True
    for panel in viewer.panels:
        watched = sorted(event for e in panel.events for event in e.watched_events)
        assert watched == ["click", "keydown"]
        assert all(e.source is panel.image for e in panel.events)


def test_classic_notebook_without_ipyevents_files_says_how_to_install_them(case, monkeypatch, tmp_path):
    """ipyevents' wheel leaves its classic-Notebook extension out: the help says what to run."""
    import importlib.metadata

    import jupyter_core.paths

    from gliseg_nb import viewers

    real_version = importlib.metadata.version
    notebook_version = {"value": "6.5.7"}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: notebook_version["value"]
                        if name == "notebook" else real_version(name))
    monkeypatch.setattr(jupyter_core.paths, "jupyter_path", lambda *parts: [str(tmp_path / "nbextensions")])
    assert "jupyter nbextension install --py --sys-prefix ipyevents" in CaseViewer(case).widget.children[-1].value

    (tmp_path / "nbextensions" / "ipyevents").mkdir(parents=True)
    (tmp_path / "nbextensions" / "ipyevents" / "extension.js").write_text("// ipyevents")
    assert viewers._classic_notebook_lacks_ipyevents() is False
    notebook_version["value"] = "7.2.0"                        # Notebook 7 loads lab extensions
    (tmp_path / "nbextensions" / "ipyevents" / "extension.js").unlink()
    assert viewers._classic_notebook_lacks_ipyevents() is False
    assert "nbextension" not in CaseViewer(case).widget.children[-1].value
