"""The README quotes measured figures from one place: docs/measured.json.

``benchmarks/bench_first_hour.py`` measures what a newcomer waits for (the synthetic
dataset, the quick training and its validation Dice, the tour) and writes the figures with
their conditions to ``docs/measured.json``. The README marks each quoted figure as
``<!--m:KEY-->shown text<!--/m-->`` (an HTML comment: invisible on GitHub); this test fails
when a shown text is not the file's value, when a key is unknown, or when the "What to
expect" section quotes a number that is neither marked nor in docs/benchmarks.md.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MEASURED_PATH = ROOT / "docs" / "measured.json"
SPAN = re.compile(r"<!--m:([\w.]+)-->(.*?)<!--/m-->", re.S)


def shown(measured, key):
    """The text the README must show for `key` (dotted path into measured.json)."""
    value = measured
    for part in key.split("."):
        if isinstance(value, dict) and part not in value and isinstance(value.get("value"), dict):
            value = value["value"]  # "quick_val_dice.WT": a field of the entry's value
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    if isinstance(value, dict) and "value" in value:  # an entry: its value and unit
        unit = value.get("unit")
        value = value["value"]
        return f"{_format(value)} {unit}" if unit else _format(value)
    return _format(value)


def _format(value):
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    raise TypeError(f"cannot quote {value!r}")


@pytest.fixture(scope="module")
def measured():
    return json.loads(MEASURED_PATH.read_text())


def test_every_marked_figure_is_the_measured_one(measured):
    spans = SPAN.findall(README)
    assert len(spans) >= 8
    for key, text in spans:
        try:
            expected = shown(measured, key)
        except KeyError:
            pytest.fail(f"README quotes {key!r}, which docs/measured.json does not hold")
        assert " ".join(text.split()) == expected, (
            f"README shows {text!r} for {key}; docs/measured.json says {expected!r} "
            "(rerun benchmarks/bench_first_hour.py, then copy the figure)"
        )


def test_every_entry_says_how_it_was_measured(measured):
    for name in ("synthetic_dataset_s", "quick_train_s", "quick_val_dice", "tour_s", "tour_again_s"):
        entry = measured[name]
        assert entry["command"]
        conditions = entry["conditions"]
        assert conditions["state"] in ("idle", "loaded")
        assert conditions["cores"] >= 1 and conditions["date"]
        assert conditions["state"] in conditions["summary"]


def test_what_to_expect_quotes_no_unmeasured_number():
    section = README.split("## What to expect", 1)[1].split("\n## ", 1)[0]
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    unmarked = SPAN.sub("", section)
    unmarked = re.sub(r"\[[^\]]*\]\([^)]*\)|`[^`]*`", "", unmarked)  # links and code
    numbers = re.findall(r"\d[\d,.\-]*\d|\d", unmarked)
    stray = [number for number in numbers if number not in benchmarks]
    assert not stray, f"'What to expect' quotes {stray} without a measured.json mark or a benchmarks.md source"
    assert len(SPAN.findall(section)) >= 7

