"""BraTS data: finding cases in every released layout, reading them, and the embedded
synthetic dataset the course runs on by default.

Public API
----------
find_cases(root)            every case below a folder, its layout recognised
load_case(case, ...)        the four modalities (float32), labels 0-3 (uint8), the affine
synthesize(out, n, seed)    write synthetic BraTS 2020-layout cases built on MNI152
get_data_dir(data_dir)      the folder the notebooks use: yours, or the synthetic default
download_msd(dest)          fetch and unpack the public Decathlon Task01 archive
fetch_example_case(dest)    download one real BraTS 2018 case (SHA-256 checked)
"""

from ._errors import DataError
from .cases import Case, find_cases, format_case_table
from .loading import BlankImageWarning, CaseData, load_case
from .synthetic import DATA_ENV_VAR, get_data_dir, synthesize
from .download import MSD_MD5, MSD_URL, download_msd
from .example import ExampleDownloadError, fetch_example_case

__all__ = [
    "DataError",
    "Case",
    "find_cases",
    "format_case_table",
    "CaseData",
    "load_case",
    "BlankImageWarning",
    "synthesize",
    "get_data_dir",
    "DATA_ENV_VAR",
    "download_msd",
    "MSD_URL",
    "MSD_MD5",
    "fetch_example_case",
    "ExampleDownloadError",
]
