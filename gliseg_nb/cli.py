"""The ``gliseg-nb`` command line.

Each subcommand is a small function ``_cmd_<name>(args)`` that calls the library; the
argument definitions live in ``build_parser``. Heavy imports (TensorFlow) happen inside the
commands that need them, so ``gliseg-nb --help`` and ``gliseg-nb cases`` stay fast.

Subcommands
-----------
synth     write the embedded synthetic BraTS-like dataset
cases     list the cases found below a folder, in any BraTS layout
show      draw one case's four modalities and labels to an image file
train     train a U-Net (with resume after interruption)
predict   segment whole volumes and write BraTS-format NIfTI files
evaluate  score predictions by region (Dice, HD95, sensitivity, specificity, volumes)
tour      execute every notebook of the course and write HTML pages
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__


class CommandError(Exception):
    """An error the command reports as one line (no traceback)."""


# -- data ------------------------------------------------------------------------------
def _cmd_synth(args):
    """Write ``args.cases`` synthetic cases (seed ``args.seed``) into ``args.out``."""
    from .data import synthesize

    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    paths = synthesize(args.out, n_cases=args.cases, seed=args.seed, progress=not args.quiet,
                       workers=args.workers)
    print(f"Wrote {len(paths)} synthetic case(s) to {args.out} "
          f"(grades in name_mapping.csv, parameters in synthetic_parameters.json)")
    return 0


def _cmd_cases(args):
    """List the cases below ``args.data``: a table, or JSON objects with ``--json``.

    A folder without cases, or a broken case folder, raises `DataError` (a ValueError),
    which `main` prints as one line.
    """
    import warnings

    from .data import find_cases, format_case_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        cases = find_cases(args.data)
    for warning in caught:
        # One line each, like the errors, rather than Python's file:line warning format.
        print(f"gliseg-nb cases: warning: {warning.message}", file=sys.stderr)
    if args.json:
        # One object per case: case_id, layout, modalities, channels, seg, grade.
        print(json.dumps([case.to_dict() for case in cases], indent=2))
    else:
        print(format_case_table(cases))
    return 0


def _cmd_show(args):
    """Draw one case's four modalities and labels (``plot_case``) into ``args.out``."""
    from .plotting import save_case_figure

    path = save_case_figure(args.data, args.out, case_id=args.case, slice_index=args.slice)
    print(f"Wrote {path}")
    return 0


# -- training and inference ------------------------------------------------------------
def _cmd_train(args):
    from .train import main_train

    return main_train(args)


def _cmd_predict(args):
    from .predict import main_predict

    return main_predict(args)


def _cmd_evaluate(args):
    from .metrics import main_evaluate

    return main_evaluate(args)


def _cmd_tour(args):
    """Execute every notebook headless into ``args.out`` (executed .ipynb + HTML); 1 on failure."""
    from .tour import run_tour

    return run_tour(args)


def build_parser():
    """The argument parser of ``gliseg-nb`` (one subparser per command)."""
    parser = argparse.ArgumentParser(
        prog="gliseg-nb",
        description="Glioma segmentation in brain MRI with a U-Net: a Jupyter-first course.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("synth", help="write the synthetic BraTS-like dataset",
                       description="Write synthetic BraTS 2020-layout cases (.nii.gz, 240x240x155).")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--cases", type=int, default=24, help="number of cases (default: 24)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed writes identical voxels (default: 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="cases generated at once, in threads (default: up to 4, one per core); "
                        "the cases do not depend on it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("cases", help="list the cases found below a folder",
                       description="Find BraTS cases in any released layout and list them.")
    p.add_argument("data", type=Path, help="folder holding BraTS data")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_cmd_cases)

    p = sub.add_parser("show", help="draw one case's modalities and labels",
                       description="Draw the four modalities and the labels of one case to an "
                                   "image file (PNG, SVG or PDF, by its extension).")
    p.add_argument("data", type=Path, help="folder holding BraTS data")
    p.add_argument("--out", type=Path, default=Path("case.png"), help="image file (default: case.png)")
    p.add_argument("--case", default=None, help="case id (default: the first case)")
    p.add_argument("--slice", type=int, default=None,
                   help="axial slice (default: the slice with the most tumour)")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("train", help="train a U-Net",
                       description="Train a U-Net; run the same command again to resume.")
    p.add_argument("data", type=Path, nargs="?", default=None,
                   help="BraTS folder (default: the embedded synthetic dataset)")
    p.add_argument("--out", type=Path, default=Path("runs/quick"), help="run folder (default: runs/quick)")
    p.add_argument("--preset", default="quick", help="settings preset: quick or report (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one setting, e.g. --set epochs=3 (repeatable)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="segment whole volumes to NIfTI",
                       description="Segment every case and write <case_id>.nii.gz in the case's release labels.")
    p.add_argument("model", type=Path, help="trained model (.keras) or run folder")
    p.add_argument("data", type=Path, help="BraTS folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, default=None,
                   help="settings the model was trained with (default: config.json of the run)")
    p.add_argument("--labels", choices=("release", "internal"), default="release",
                   help="labels to write: each case's release (4 = enhancing for BraTS "
                        "2019-2021) or internal 0-3 (default: release)")
    p.add_argument("--case", action="append", default=None, metavar="CASE_ID",
                   help="predict only this case (repeatable; default: every case)")
    p.add_argument("--batch-size", type=int, default=32, help="slices per forward pass (default: 32)")
    p.add_argument("--tta", action="store_true",
                   help="average over the four in-plane flips (4x slower; default: off)")
    p.add_argument("--min-et-voxels", type=int, default=0,
                   help="relabel enhancing tumour as necrosis when its total is below this "
                        "many voxels, as the BraTS 2020 winner did (default: 0, off)")
    p.add_argument("--min-component-voxels", type=int, default=0,
                   help="erase tumour components smaller than this many voxels, except the "
                        "largest (default: 0, off)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score predictions by region",
                       description="Dice, HD95, sensitivity, specificity and volumes per region (WT, TC, ET).")
    p.add_argument("predictions", type=Path, help="folder of <case_id>.nii.gz predictions")
    p.add_argument("data", type=Path, help="BraTS folder with the ground truth")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--csv", type=Path, default=None, help="also write per-case scores to this CSV file")
    p.add_argument("--labels", choices=("release", "internal"), default="release",
                   help="labels of the prediction files: each case's release (4 = enhancing for "
                        "BraTS 2019-2021) or internal 0-3 (default: release)")
    p.add_argument("--case", action="append", default=None, metavar="CASE_ID",
                   help="score only this case (repeatable; default: every case with a segmentation)")
    p.add_argument("--lesion-wise", action="store_true",
                   help="also compute the BraTS 2023 lesion-wise Dice and HD95 (each lesion counts "
                        "the same; missed lesions and false-positive components score 0)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("tour", help="run every notebook and write HTML pages",
                       description="Execute the course's notebooks in order, headless, into a build folder.")
    from .tour import add_arguments as add_tour_arguments  # light module: no notebook machinery

    add_tour_arguments(p)
    p.set_defaults(func=_cmd_tour)
    return parser


#: Commands that run TensorFlow (the others must stay fast and never import it).
_TENSORFLOW_COMMANDS = ("train", "predict")


def main(argv=None):
    """Entry point of the ``gliseg-nb`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in _TENSORFLOW_COMMANDS:
        # Before anything imports TensorFlow: its C++ log lines are noise in a terminal.
        from .course import quiet_tensorflow

        quiet_tensorflow()
    try:
        return args.func(args) or 0
    except (CommandError, ValueError, FileNotFoundError) as error:
        # Library errors name the file and the problem; a traceback would only hide that.
        print(f"gliseg-nb {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gliseg-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
