"""The ``gliseg-nb`` command line.

Each subcommand is a small function ``_cmd_<name>(args)`` that reads the parsed options,
calls a library function with keyword arguments and prints the result; the argument
definitions live in `build_parser`. The library never sees an argparse Namespace and never
prints a result table itself. Heavy imports (TensorFlow) happen inside the commands that
need them, so ``gliseg-nb --help`` and ``gliseg-nb cases`` stay fast.

Errors: the library raises `gliseg_nb.GlisegError` (`DataError`, `ConfigError`,
`RunError`) for anything a user can fix, with a message naming the file and the problem.
`main` prints that message as one line, ``gliseg-nb <command>: error: <message>``, and
exits with status 2; ``--debug`` shows the traceback instead. Any other exception is a bug
and keeps its traceback.

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
import contextlib
import json
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import ConfigError, GlisegError


@contextlib.contextmanager
def _warnings_as_lines(command):
    """Print the library's warnings as one line each, like the errors.

    Python's own format (``file:line: UserWarning: ...`` and the source line) says nothing a
    user needs. The lines are printed when the command succeeds; when it fails, its error
    is the one line printed.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for warning in caught:
        print(f"gliseg-nb {command}: warning: {warning.message}", file=sys.stderr)


def _at_least(name, value, minimum):
    """A numeric option checked by the command line: ConfigError naming the option."""
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


# -- data ------------------------------------------------------------------------------
def _cmd_synth(args):
    """Write ``args.cases`` synthetic cases (seed ``args.seed``) into ``args.out``."""
    from ._io import output_folder
    from .data import synthesize

    _at_least("--cases", args.cases, 1)
    _at_least("--workers", args.workers, 1)
    out = output_folder(args.out, what="output folder")
    paths = synthesize(out, n_cases=args.cases, seed=args.seed, progress=not args.quiet,
                       workers=args.workers)
    print(f"Wrote {len(paths)} synthetic case(s) to {out} "
          f"(grades in name_mapping.csv, parameters in synthetic_parameters.json)")
    return 0


def _cmd_cases(args):
    """List the cases below ``args.data``: a table, or JSON objects with ``--json``.

    A folder without cases, or a broken case folder, raises `DataError`, which `main`
    prints as one line; warnings (an incomplete copy) are one line each.
    """
    from .data import find_cases, format_case_table

    with _warnings_as_lines("cases"):
        cases = find_cases(args.data)
    if args.json:
        # One object per case: case_id, layout, modalities, channels, seg, grade.
        print(json.dumps([case.to_dict() for case in cases], indent=2))
    else:
        print(format_case_table(cases))
    return 0


def _cmd_show(args):
    """Draw one case's four modalities and labels (``plot_case``) into ``args.out``."""
    from .plotting import save_case_figure

    with _warnings_as_lines("show"):
        path = save_case_figure(args.data, args.out, case_id=args.case, slice_index=args.slice)
    print(f"Wrote {path}")
    return 0


# -- training and inference ------------------------------------------------------------
def _cmd_train(args):
    """Train into ``args.out`` (`gliseg_nb.train.train_run`), which prints its progress."""
    from .train import parse_overrides, train_run

    overrides = parse_overrides(args.overrides)
    train_run(args.data, args.out, preset=args.preset, overrides=overrides)
    return 0


def _cmd_predict(args):
    """Segment the cases of ``args.data`` into ``args.out`` (`gliseg_nb.predict.predict_folder`)."""
    from ._io import user_path
    from .predict import predict_folder

    with _warnings_as_lines("predict"):
        written = predict_folder(
            args.model,
            args.data,
            args.out,
            config=args.config,
            label_convention=args.labels,
            batch_size=args.batch_size,
            tta=args.tta,
            min_et_voxels=args.min_et_voxels,
            min_component_voxels=args.min_component_voxels,
            cases=args.case,
            nan_policy=args.nan_policy,
            overwrite=args.overwrite,
        )
    print(f"Wrote {len(written)} prediction(s) to {user_path(args.out)}")
    return 0


def _cmd_evaluate(args):
    """Score ``args.predictions`` (`gliseg_nb.metrics.evaluate_folder`) and print the tables."""
    from ._io import output_file
    from .metrics.evaluation import (
        evaluate_folder,
        format_case_table,
        format_summary_table,
        summarize_scores,
        write_scores_csv,
    )

    # Checked before scoring: a CSV path that cannot be written fails now.
    csv_path = output_file(args.csv, what="CSV file") if args.csv is not None else None
    with _warnings_as_lines("evaluate"):
        rows = evaluate_folder(
            args.predictions,
            args.data,
            label_convention=args.labels,
            progress=not args.json,
            case_ids=args.case,
            lesion_wise=args.lesion_wise,
        )
    summary = summarize_scores(rows)
    if csv_path is not None:
        write_scores_csv(rows, csv_path)
    if args.json:
        print(json.dumps({"cases": rows, "summary": summary}, indent=2))
        return 0
    shown = ("dice", "hd95", "sensitivity", "specificity")
    if args.lesion_wise:
        shown = ("dice", "hd95", "lesion_dice", "lesion_hd95", "lesions_missed", "false_positive_lesions")
    print(format_case_table(rows, metrics=shown))
    print()
    print(f"Summary over {len(rows)} case(s) (HD95 and volumes in mm and mL):")
    print(format_summary_table(summary))
    if csv_path is not None:
        print(f"\nWrote per-case scores to {csv_path}")
    return 0


def _cmd_tour(args):
    """Execute every notebook headless into ``args.out`` (executed .ipynb + HTML); 1 on failure."""
    from .tour import run_tour

    return run_tour(args.out, notebooks=args.notebooks, timeout=args.timeout, keep_going=args.keep_going)


def _add_debug(parser, default):
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the full traceback of an error instead of one line")


def build_parser():
    """The argument parser of ``gliseg-nb`` (one subparser per command)."""
    # The defaults of `predict` are those of `gliseg_nb.predict` (no TensorFlow imported).
    from .predict import DEFAULT_MIN_COMPONENT_VOXELS, DEFAULT_TTA, TTA_CHOICES

    parser = argparse.ArgumentParser(
        prog="gliseg-nb",
        description="Glioma segmentation in brain MRI with a U-Net: a Jupyter-first course.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_debug(parser, default=False)
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
    # --tta alone (the flag of earlier versions) still means all four flips, wherever it stands
    # (`_bare_tta_means_all` gives it its value before argparse reads the paths).
    flips = p.add_mutually_exclusive_group()
    flips.add_argument("--tta", nargs="?", choices=TTA_CHOICES, const="all", default=DEFAULT_TTA,
                       metavar="{none,lr,all}",
                       help="test-time flips averaged: 'all' the four in-plane flips (four forward "
                            "passes: about 2x the CPU time of one with the quick network, up to "
                            "4x with the report's), 'lr' each slice and its left-right mirror "
                            "(two), 'none' one pass "
                            f"(default: {DEFAULT_TTA}; --tta alone: all)")
    flips.add_argument("--no-tta", dest="tta", action="store_const", const="none",
                       help="predict each slice once (the same as --tta none)")
    p.add_argument("--min-et-voxels", type=int, default=0,
                   help="relabel enhancing tumour as necrosis when its total is below this "
                        "many voxels, as the BraTS 2020 winner did (default: 0, off)")
    p.add_argument("--min-component-voxels", type=int, default=DEFAULT_MIN_COMPONENT_VOXELS,
                   help="erase tumour components smaller than this many voxels, except the "
                        f"largest; 0 keeps them all (default: {DEFAULT_MIN_COMPONENT_VOXELS}, 1 mL "
                        "at 1 mm)")
    p.add_argument("--nan-policy", choices=("raise", "zero"), default="raise",
                   help="NaN or infinite voxels in an image: stop with an error naming the file, "
                        "or set them to 0 with a warning (default: raise)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the predictions of another model found in --out (default: refuse)")
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
    for subparser in sub.choices.values():
        # Also accepted after the command; SUPPRESS keeps a --debug given before it.
        _add_debug(subparser, default=argparse.SUPPRESS)
    return parser


#: Commands that run TensorFlow (the others must stay fast and never import it).
_TENSORFLOW_COMMANDS = ("train", "predict")


def _bare_tta_means_all(argv):
    """``--tta`` took no value before it took one: keep ``predict --tta MODEL DATA`` working.

    A ``--tta`` not followed by one of its values gets ``all`` (what the bare flag always
    meant) inserted after it, so that argparse does not read the model's path as its value.
    """
    from .predict import TTA_CHOICES

    fixed = []
    for index, token in enumerate(argv):
        fixed.append(token)
        if token == "--tta" and (index + 1 == len(argv) or argv[index + 1] not in TTA_CHOICES):
            fixed.append("all")
    return fixed


def main(argv=None):
    """Entry point of the ``gliseg-nb`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for an error a user can fix (one line on stderr),
        130 when interrupted (Ctrl-C), or what the command returns (1: ``tour`` failures).
    """
    parser = build_parser()
    args = parser.parse_args(_bare_tta_means_all(sys.argv[1:] if argv is None else list(argv)))
    if args.command in _TENSORFLOW_COMMANDS:
        # Before anything imports TensorFlow: its C++ log lines are noise in a terminal.
        from .course import quiet_tensorflow

        quiet_tensorflow()
    try:
        return args.func(args) or 0
    except GlisegError as error:
        if args.debug:
            raise
        # Library errors name the file and the problem; a traceback would only hide that.
        print(f"gliseg-nb {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gliseg-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
