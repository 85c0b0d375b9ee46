"""What a newcomer waits for, measured: the numbers the README's "What to expect" quotes.

Runs, each from an empty cache, as a learner would:

* ``synthetic_dataset_s``: the embedded synthetic dataset, generated on first use
  (`gliseg_nb.data.get_data_dir`);
* ``quick_train_s`` and ``quick_val_dice`` (WT, TC, ET): ``gliseg-nb train`` with the
  ``quick`` preset on that dataset, and the validation Dice it prints;
* ``tour_s``: ``gliseg-nb tour`` from nothing (data generation and training included);
* ``tour_again_s``: the same tour once more, on the data and model the first one made: the
  course as a class runs it after the instructor's ``gliseg-nb tour``, or a learner on a
  second visit (notebook 4 still trains its plain-Keras epoch for real).

Both tours also record the seconds of each notebook (``per_notebook_s``).

and writes them, with the conditions (cores, CPU, load average before and after, versions,
date), to ``docs/measured.json``. ``tests/test_measured.py`` checks that every figure the
README quotes is the one in that file, so rerunning this script and then the test is how the
README stays true::

    python benchmarks/bench_first_hour.py            # about 10 minutes on an idle 2-core machine
    python -m pytest tests/test_measured.py          # then update the README where it fails

``--skip tour`` leaves the tour's entry as it was (its conditions are stored with it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "measured.json"


def _load():
    return tuple(round(value, 2) for value in os.getloadavg())


def wait_for_quiet(max_wait_s=180, poll_s=5):
    """Wait until the 1-minute load average is below half a core per core (at most `max_wait_s`).

    The load average remembers the last minute or so: right after this script's own
    training, the next measurement would start "loaded" on a machine that is in fact idle,
    or on one where the previous step's processes are still ending. Returns the seconds
    waited.
    """
    started = time.perf_counter()
    while os.getloadavg()[0] >= 0.5 * os.cpu_count() and time.perf_counter() - started < max_wait_s:
        time.sleep(poll_s)
    return round(time.perf_counter() - started)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(load_before, load_after):
    """Where and how loaded: a dict, and a one-line description for the README."""
    cores = os.cpu_count()
    # "idle": nothing else ran when the measurement started (1-minute load average below
    # half a core per core). The load *after* includes the measurement's own work (a
    # training keeps both cores busy), so it is reported but does not decide.
    state = "idle" if load_before[0] < 0.5 * cores else "loaded"
    from gliseg_nb.course import quiet_tensorflow

    tf = quiet_tensorflow()  # only for its version: without its C++ log lines
    import keras

    info = {
        "date": datetime.date.today().isoformat(),
        "cores": cores,
        "cpu": _cpu_model(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "state": state,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    info["summary"] = (
        f"{cores} CPU cores, {state} (1-minute load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after), {info['date']}"
    )
    return info


def _run(argv, env, cwd=None):
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def measure_synthetic_and_training(env):
    code = "from gliseg_nb.data import get_data_dir; print(get_data_dir())"
    wait_for_quiet()
    load_before = _load()
    synth_s, _ = _run([sys.executable, "-c", code], env)
    train_s, printed = _run([sys.executable, "-m", "gliseg_nb", "train", "--out",
                             str(Path(env["GLISEG_NB_CACHE"]) / "run")], env)
    load_after = _load()
    match = re.search(r"Validation Dice of the best model: WT ([\d.]+), TC ([\d.]+), ET ([\d.]+)", printed)
    if not match:
        sys.exit(f"gliseg-nb train did not print the validation Dice:\n{printed}")
    dice = dict(zip(("WT", "TC", "ET"), map(float, match.groups())))
    where = conditions(load_before, load_after)
    return {
        "synthetic_dataset_s": {"value": round(synth_s), "unit": "s", "conditions": where,
                                "command": "python -c 'from gliseg_nb.data import get_data_dir; get_data_dir()'"},
        "quick_train_s": {"value": round(train_s), "unit": "s", "conditions": where,
                          "command": "gliseg-nb train --out RUN (quick preset, synthetic data)"},
        "quick_val_dice": {"value": dice, "conditions": where,
                           "command": "gliseg-nb train --out RUN: 'Validation Dice of the best model'"},
    }


_TOUR_LINE = re.compile(r"^(\S+\.ipynb)\s+([\d.]+) s", re.MULTILINE)


def measure_tour(env):
    results = {}
    for name, what in (("tour_s", "empty cache: data generation and training included"),
                       ("tour_again_s", "again, on the data and model of the first tour")):
        wait_for_quiet()
        load_before = _load()
        tour_s, printed = _run([sys.executable, "-m", "gliseg_nb", "tour", "--out",
                                str(Path(env["GLISEG_NB_CACHE"]) / name)], env)
        per_notebook = {match.group(1): float(match.group(2)) for match in _TOUR_LINE.finditer(printed)}
        if not per_notebook:
            sys.exit(f"gliseg-nb tour did not print its per-notebook times:\n{printed}")
        results[name] = {"value": round(tour_s), "unit": "s", "conditions": conditions(load_before, _load()),
                         "command": f"gliseg-nb tour ({what})", "per_notebook_s": per_notebook}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip", action="append", default=[], choices=("train", "tour"),
                        help="keep this entry of docs/measured.json as it is (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON file (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    measured = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for step, measure in (("train", measure_synthetic_and_training), ("tour", measure_tour)):
        if step in args.skip:
            continue
        with tempfile.TemporaryDirectory(prefix="gliseg-first-hour-") as cache:
            env = {**os.environ, "GLISEG_NB_CACHE": cache, "MPLBACKEND": "Agg"}
            env.pop("GLISEG_NB_DATA", None)
            results = measure(env)
        measured.update(results)
        for name, entry in results.items():
            print(f"{name}: {entry['value']} {entry.get('unit', '')} ({entry['conditions']['summary']})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
