"""The public Medical Segmentation Decathlon Task01 (brain tumour) download.

The Decathlon's Task01_BrainTumour is BraTS 2016/2017 data repackaged (484 labelled training
cases as 4-D NIfTI files) and needs no account, unlike the BraTS releases. `download_msd`
fetches it with pooch, checks its MD5 checksum, unpacks it safely and returns the folder
that `find_cases` reads.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ._errors import DataError

__all__ = ["MSD_URL", "MSD_MD5", "MSD_FOLDER", "download_msd"]

#: Where the Decathlon's Task01 archive lives (public, about 7.6 GB).
MSD_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task01_BrainTumour.tar"
#: Its MD5 checksum, as published with the MONAI mirror.
MSD_MD5 = "240a19d752f0d9e9101544901065d872"
#: The folder the archive unpacks to.
MSD_FOLDER = "Task01_BrainTumour"


def download_msd(dest, url=MSD_URL, md5=MSD_MD5, progress=True, keep_archive=False):
    """Download and unpack the Decathlon Task01_BrainTumour dataset.

    Running it again once the data is unpacked downloads nothing and returns at once.

    Parameters
    ----------
    dest : str or pathlib.Path
        Folder to put the data in (created if needed).
    url : str, default=MSD_URL
        Where to fetch the tar archive from.
    md5 : str or None, default=MSD_MD5
        Expected MD5 checksum of the archive; None skips the check (not recommended).
    progress : bool, default=True
        Show progress bars while downloading and unpacking.
    keep_archive : bool, default=False
        Keep the downloaded ``.tar`` next to the unpacked folder (it doubles the disk use).

    Returns
    -------
    pathlib.Path
        ``dest / "Task01_BrainTumour"``, the folder to give `find_cases`.

    Raises
    ------
    DataError
        If the download fails, if the checksum does not match (nothing is kept), if the
        archive holds a member whose path leaves `dest`, a symbolic or hard link, a device
        or a FIFO (Task01 holds none; nothing is unpacked and the archive is deleted), if
        it cannot be unpacked, or if it lacks the ``Task01_BrainTumour`` folder. Nothing
        half-unpacked is ever left behind.

    Notes
    -----
    The archive is downloaded to ``dest`` first (pooch writes it under a temporary name
    and renames it once complete), then unpacked into a hidden temporary folder in
    ``dest`` that is renamed to ``Task01_BrainTumour`` at the end: about 15 GB of free
    space are needed while it runs. macOS ``._*`` files in the archive are skipped.

    Examples
    --------
    >>> from gliseg_nb.data import download_msd, find_cases
    >>> folder = download_msd("~/data")  # doctest: +SKIP
    >>> len(find_cases(folder))  # doctest: +SKIP
    750
    """
    import pooch
    import requests  # pooch's HTTP client

    dest = Path(dest).expanduser().absolute()
    target = dest / MSD_FOLDER
    if _looks_unpacked(target):
        return target
    if target.exists():
        raise DataError(
            f"{target}: exists but is not a complete Task01_BrainTumour folder (no dataset.json "
            f"or imagesTr); remove it and run download_msd again"
        )
    dest.mkdir(parents=True, exist_ok=True)

    archive_name = PurePosixPath(url.split("?")[0]).name or f"{MSD_FOLDER}.tar"
    try:
        archive = Path(
            pooch.retrieve(
                url,
                known_hash=f"md5:{md5}" if md5 else None,
                fname=archive_name,
                path=dest,
                progressbar=progress,
            )
        )
    except ValueError as error:
        # pooch raises ValueError on a checksum mismatch, after deleting the download.
        raise DataError(f"{url}: download failed the checksum test ({error})") from error
    except (requests.exceptions.RequestException, OSError) as error:
        raise DataError(
            f"{url}: download failed ({type(error).__name__}: {error}); check the address "
            f"and the internet connection, then run download_msd again"
        ) from error

    _extract_safely(archive, dest, target, progress)
    if not keep_archive:
        archive.unlink()
    return target


def _looks_unpacked(folder):
    return (folder / "dataset.json").is_file() and (folder / "imagesTr").is_dir()


def _extract_safely(archive, dest, target, progress=False):
    """Unpack `archive` into a temporary folder in `dest`, then move it to `target`."""
    from .._progress_bar import progress_bar

    # Unpacking next to the destination makes the final rename atomic (same file system).
    staging = Path(tempfile.mkdtemp(prefix=".msd-unpack-", dir=dest))
    # Python's own guard (3.12, and the security backports to 3.8-3.11): a second line of
    # defence behind _safe_members.
    guard = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        try:
            with tarfile.open(archive) as tar:
                try:
                    members = _safe_members(tar, archive)
                except DataError as error:
                    # A hostile archive is of no use to anyone: do not leave it lying around.
                    tar.close()
                    archive.unlink(missing_ok=True)
                    raise DataError(f"{error}; the archive was deleted") from error
                # Member by member, so that the several minutes of unpacking show progress.
                for member in progress_bar(members, desc="Unpacking", unit="file", disable=not progress):
                    tar.extract(member, staging, **guard)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{archive}: cannot unpack the archive ({error})") from error
        unpacked = staging / MSD_FOLDER
        if not unpacked.is_dir():
            raise DataError(f"{archive}: the archive holds no {MSD_FOLDER} folder")
        os.replace(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_members(tar, archive):
    """The members worth unpacking; raise a DataError on any that is not a plain file or
    folder inside the destination, before anything is unpacked.

    Task01 holds only files and folders. Links are refused outright rather than checked:
    a link's target read as text says nothing about the links unpacked before it (a chain
    of symlinks plus a hard link through them escapes the destination, CVE-2025-4517,
    which Python's own ``data`` filter does not stop before 3.11.13 and 3.12.11).
    """
    members = []
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if (path.is_absolute() or ".." in path.parts or "\\" in member.name
                or (path.parts and ":" in path.parts[0])):
            raise DataError(
                f"{archive}: refusing to unpack member {member.name!r}: its path leaves the "
                f"destination folder"
            )
        if member.issym() or member.islnk():
            kind = "symbolic link" if member.issym() else "hard link"
            raise DataError(
                f"{archive}: refusing to unpack {kind} {member.name!r} -> {member.linkname!r}: "
                f"the Decathlon archive holds no links, so this is not the Task01 archive"
            )
        if not (member.isfile() or member.isdir()):
            # Devices, FIFOs, contiguous files: no place in a dataset either.
            raise DataError(
                f"{archive}: refusing to unpack member {member.name!r}: a "
                f"{_member_kind(member)}, not a file or folder"
            )
        if path.name.startswith("._") or "__MACOSX" in path.parts:
            # macOS AppleDouble junk: not images, and nibabel cannot read them.
            continue
        members.append(member)
    return members


def _member_kind(member):
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"member of tar type {member.type!r}"
