"""Viewer latency in a real browser, ipywidgets 8 and 7 back to back: slider key -> new picture.

Each round runs the two browser tests' latency measurement in one pytest session, one after
the other: ``tests/test_browser.py`` (JupyterLab 4, ipywidgets 8, this environment) and
``tests/test_browser_widgets7.py`` (classic Notebook 6.5, Colab's ipywidgets 7.7.1, in an
environment of its own). Each measurement focuses the ``CaseViewer``'s slice slider, presses
an arrow key 8 times and times each press to the first new picture in the page (a
``MutationObserver`` on the pictures' ``src``). The order alternates between rounds, so that
neither version always runs first. Prints the medians and writes them, with every sample and
the load average before and after each round, as JSON::

    python benchmarks/bench_viewer_latency.py --rounds 3 --out benchmarks/results/viewer-latency.json

Needs what the two tests need (Chromium at /usr/bin/chromium, the test extra). Set
``GLISEG_NB_WIDGETS7_PYTHON`` to an ipywidgets 7.7.1 environment's python to skip building one
in every round (the test says what it must hold).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = {
    "ipywidgets 8 (JupyterLab 4)": ("tests/test_browser.py", "viewer_latency_ms_all"),
    "ipywidgets 7.7.1 (Notebook 6.5)": ("tests/test_browser_widgets7.py", "viewer_latency_ms_all_widgets7"),
}
TEST_NAME = "test_slider_latency_from_key_to_new_picture"


def _load():
    return [round(value, 2) for value in os.getloadavg()]


def one_round(order):
    """Run the latency tests in `order`; returns {label: [ms, ...]}."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.xml"
        selected = [f"{TESTS[label][0]}::{TEST_NAME}" for label in order]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
             *selected], cwd=ROOT, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            sys.exit(f"the browser tests failed:\n{result.stdout[-3000:]}")
        properties = {prop.get("name"): prop.get("value")
                      for prop in ElementTree.parse(report).iter("property")}
    return {label: [float(x) for x in properties[TESTS[label][1]].split()] for label in order}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write (default: none)")
    args = parser.parse_args(argv)

    labels = list(TESTS)
    rounds = []
    for index in range(args.rounds):
        order = labels if index % 2 == 0 else labels[::-1]
        before = _load()
        samples = one_round(order)
        rounds.append({"order": order, "load_before": before, "load_after": _load(), "samples_ms": samples})
        print(f"round {index + 1} (load {before[0]}): " + ", ".join(
            f"{label} {statistics.median(samples[label]):.0f} ms" for label in order), flush=True)
    summary = {}
    for label in labels:
        every = [x for entry in rounds for x in entry["samples_ms"][label]]
        summary[label] = {"median_ms": round(statistics.median(every)), "max_ms": round(max(every)),
                          "n": len(every)}
        print(f"{label}: median {summary[label]['median_ms']} ms, max {summary[label]['max_ms']} ms "
              f"over {len(every)} key presses")
    if args.out:
        args.out.write_text(json.dumps({
            "what": "slider arrow key -> first new picture, CaseViewer width 600, case 48x56x32",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cores": os.cpu_count(), "summary": summary, "rounds": rounds,
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
