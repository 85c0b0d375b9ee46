"""One real BraTS case, for learners who are online: `fetch_example_case`.

The course trains on synthetic data; this gives a learner one real, expert-labelled scan to
try the trained model on. The case is ``Brats18_TCIA01_201_1`` of the BraTS 2018 training
data (a high-grade glioma), as published in the public DeepBrainSeg repository
(koriavinash1/DeepBrainSeg, ``sample_volume/brats/``), pinned to one commit and checked file
by file against SHA-256 hashes. Data use: the BraTS terms (cite Menze et al. 2015 and
Bakas et al. 2017/2018). The package never ships the voxels.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ._errors import DataError

__all__ = ["EXAMPLE_CASE_ID", "EXAMPLE_BASE_URL", "EXAMPLE_SHA256", "fetch_example_case"]

#: The case's id; also the folder `fetch_example_case` writes.
EXAMPLE_CASE_ID = "Brats18_TCIA01_201_1"
#: Where its files live: the DeepBrainSeg repository at commit 5d4f3810.
EXAMPLE_BASE_URL = (
    "https://raw.githubusercontent.com/koriavinash1/DeepBrainSeg/"
    "5d4f3810f1c776050b6937b6db5b7afa17527efd/sample_volume/brats/" + EXAMPLE_CASE_ID
)
#: SHA-256 of each file, ``<case id>_<key>.nii.gz``.
EXAMPLE_SHA256 = {
    "flair": "33b33f39bd39b54067079339ddaafe69ead899f16d1bcb7cd76b0b55360bac74",
    "t1": "69f3c9bfad17b3e2f99535bcc9bb3ee56e484f281d42bff595f379b744e1239c",
    "t1ce": "14854ad3a15f7ecbc28054d444960746b897d35e6594c971c30350dfad75d229",
    "t2": "60c3fc8ee69e75b848c6f2d58d1cc5058ae5e8671913592775351861d9d6aafd",
    "seg": "4200cc6f1682b47de4837c505d7572d1513f90a12e1214ab6c59420e26f643ce",
}


class ExampleDownloadError(DataError):
    """The example case could not be downloaded, or a file failed its checksum."""


def fetch_example_case(dest, base_url=EXAMPLE_BASE_URL, progress=False):
    """Download one real BraTS 2018 case (four contrasts and the expert segmentation).

    The five files (about 10 MB) are fetched with pooch, each checked against its SHA-256
    hash, and laid out as a BraTS case folder that `find_cases` reads:
    ``dest/Brats18_TCIA01_201_1/Brats18_TCIA01_201_1_{flair,t1,t1ce,t2,seg}.nii.gz``.
    The folder appears only once every file has passed its check; running it again when
    it is complete downloads nothing.

    Parameters
    ----------
    dest : str or pathlib.Path
        Folder to put the case folder in (created if needed).
    base_url : str, default=EXAMPLE_BASE_URL
        Where the files are: ``<base_url>/<case id>_<modality>.nii.gz``. Tests point it at
        a local server.
    progress : bool, default=False
        Show pooch's download progress bars.

    Returns
    -------
    pathlib.Path
        ``dest`` (the folder to give `find_cases`; the case is its only entry written).

    Raises
    ------
    ExampleDownloadError
        A `DataError`: the download failed (offline, say) or a file's hash did not match.
        Nothing is left in `dest` then.

    Examples
    --------
    >>> from gliseg_nb.data import fetch_example_case, find_cases
    >>> cases = find_cases(fetch_example_case("~/data/example"))  # doctest: +SKIP
    >>> cases[0].case_id  # doctest: +SKIP
    'Brats18_TCIA01_201_1'
    """
    import pooch
    import requests  # pooch's HTTP client

    dest = Path(dest).expanduser().absolute()
    final = dest / EXAMPLE_CASE_ID
    names = {key: f"{EXAMPLE_CASE_ID}_{key}.nii.gz" for key in EXAMPLE_SHA256}
    if final.is_dir() and all((final / name).is_file() for name in names.values()):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    # A hidden folder first (find_cases skips dot-folders), renamed once every file is in.
    partial = dest / f".{EXAMPLE_CASE_ID}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        for key, name in names.items():
            url = f"{base_url.rstrip('/')}/{name}"
            try:
                pooch.retrieve(url, known_hash=f"sha256:{EXAMPLE_SHA256[key]}", fname=name,
                               path=partial, progressbar=progress)
            except ValueError as error:
                # pooch raises ValueError on a hash mismatch (and deletes the file).
                raise ExampleDownloadError(
                    f"{url}: the file does not match its SHA-256 hash; not using it "
                    f"({str(error).splitlines()[0]})") from None
            except (requests.exceptions.RequestException, OSError) as error:
                raise ExampleDownloadError(
                    f"{url}: download failed ({type(error).__name__}); are you online? The "
                    f"course runs without this case") from None
        if final.exists():
            shutil.rmtree(final)  # an incomplete earlier copy
        os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest
