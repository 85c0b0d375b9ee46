"""Measured results that the course quotes, shipped with the package.

The notebooks print tables from benchmark runs (for example notebook 4's corrections of
the source notebook). The result files live here, inside the package, so that an
installed copy (Colab, a wheel) finds them without the repository's ``benchmarks/``
folder. Each file is the JSON a ``benchmarks/bench_*.py`` script wrote with ``--out``,
unchanged; the machine and the load it ran under are recorded inside it.

* `available`: the names of the stored results.
* `load`: one result, as the dictionary the benchmark wrote.
"""

from __future__ import annotations

import json
from importlib import resources

from ..errors import GlisegError

__all__ = ["MeasuredError", "available", "load"]


class MeasuredError(GlisegError, ValueError):
    """A stored result that does not exist or cannot be read."""


def _folder():
    return resources.files(__name__)


def available():
    """The names of the stored results, sorted.

    Returns
    -------
    list of str
        File names without the ``.json`` suffix; each one can be passed to `load`.
    """
    return sorted(entry.name[: -len(".json")] for entry in _folder().iterdir()
                  if entry.name.endswith(".json"))


def load(name):
    """Read one stored result.

    Parameters
    ----------
    name : str
        The result's name, with or without the ``.json`` suffix
        (``"corrections-v4-quick"``); `available` lists them.

    Returns
    -------
    dict
        The JSON document the benchmark wrote.

    Raises
    ------
    MeasuredError
        If no result has that name, or its file is not valid JSON.
    """
    stem = name[: -len(".json")] if name.endswith(".json") else name
    entry = _folder() / f"{stem}.json"
    if not stem or "/" in stem or "\\" in stem or not entry.is_file():
        raise MeasuredError(f"no stored result named {name!r}; available: {', '.join(available())}")
    try:
        return json.loads(entry.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise MeasuredError(f"{entry}: not valid JSON ({error.msg}, line {error.lineno})") from None
