"""Verified downloads and safe extraction of dataset archives (tar or zip) and backbone weights.

A download resumes a partial file with an HTTP Range request, retries with exponential backoff, moves
on to the next mirror when one fails, and only renames the file to its final name once its checksum
matches. Extraction of a tar (VOC, SBD) or zip (MS COCO) archive checks every member before writing
anything, extracts into a temporary directory (tar members through Python's tarfile ``data`` filter),
and renames that directory into place: a bad archive never leaves a half-extracted tree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from operator import attrgetter
from pathlib import Path, PurePosixPath

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected checksum; the message lists what each one did."""


class ArchiveError(ValueError):
    """An archive that cannot be extracted safely or completely; the message names the archive and member."""


# The config's download keys that say how patiently to fetch (download(...)'s keyword arguments)
FETCH_KEYS = ("retries", "backoff_s", "timeout_s")


def fetch_settings(download_config: dict) -> dict:
    """download.retries / backoff_s / timeout_s of the config, as download()'s keyword arguments."""
    return {key: download_config[key] for key in FETCH_KEYS}


def mirror_urls(mirrors: list[str], file: str) -> list[str]:
    """Full URLs of file on each mirror: a mirror given as a directory URL gets the file name appended."""
    return [url if url.endswith(f"/{file}") else f"{url.rstrip('/')}/{file}" for url in mirrors]


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_matches(path: Path, md5: str | None = None, sha256_prefix: str | None = None) -> bool:
    if md5 and file_digest(path, "md5") != md5.lower():
        return False
    if sha256_prefix and not file_digest(path, "sha256").startswith(sha256_prefix.lower()):
        return False
    return True


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the rest of url to part, asking the server to skip what part already holds."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: part is already whole (or too long)
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the Range header: start again
            log.info("%s does not resume; downloading from the start", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(part, "ab" if have else "wb") as handle,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], mininterval=2) as progress,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                progress.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed at byte {part.stat().st_size} of {total}")


def download(
    urls: list[str],
    dest: Path,
    md5: str | None = None,
    sha256_prefix: str | None = None,
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
) -> Path:
    """Fetch dest from the first mirror that delivers a file with the expected checksum.

    The partial file (``<dest>.part``) survives failures and interrupted jobs, so the next attempt, or the
    next run, resumes it. A mirror gets ``retries`` attempts after its first one, ``backoff_s`` doubling
    between them; a checksum mismatch discards the partial file and moves on to the next mirror.
    """
    if not md5 and not sha256_prefix:
        raise ValueError(f"refusing to download {dest} without a checksum to verify")
    dest = Path(dest)
    if dest.exists() and checksum_matches(dest, md5, sha256_prefix):
        log.info("%s is already present and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        for attempt in range(retries + 1):
            if attempt:
                wait = backoff_s * 2 ** (attempt - 1)
                log.info("retrying %s in %.1f s (attempt %d of %d)", url, wait, attempt + 1, retries + 1)
                time.sleep(wait)
            try:
                log.info("downloading %s", url)
                _fetch(url, part, timeout_s)
            except urllib.error.HTTPError as error:
                failures.append(f"{url}: HTTP {error.code} {error.reason}")
                log.warning("%s", failures[-1])
                if 400 <= error.code < 500 and error.code not in (408, 429):
                    break  # the mirror does not have it: retrying will not help
                continue
            except (OSError, ConnectionError) as error:  # URLError, timeouts and cut connections
                failures.append(f"{url}: {error}")
                log.warning("%s", failures[-1])
                continue
            if checksum_matches(part, md5, sha256_prefix):
                os.replace(part, dest)
                log.info("verified %s", dest)
                return dest
            expected = md5 or f"sha256 {sha256_prefix}…"
            failures.append(f"{url}: checksum mismatch (expected {expected}), file discarded")
            log.warning("%s", failures[-1])
            part.unlink()
            break
    raise DownloadError(
        f"could not download {dest.name} from any mirror:\n  " + "\n  ".join(failures or ["no mirrors configured"])
    )


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be extracted, or None. Checked before anything is written."""
    name = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or name.is_absolute():
        return "absolute path"
    if ".." in name.parts:
        return "path with '..'"
    if member.isdev():
        return "device or fifo"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath()
        if target.is_absolute() or ".." in PurePosixPath(os.path.normpath(base / target)).parts:
            return f"link to {member.linkname} outside the archive"
    return None


def _zip_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be extracted, or None. Checked before anything is written."""
    name, mode = info.orig_filename, info.external_attr >> 16  # filename is cut at a NUL; orig_filename is not
    if not name or "\0" in name:
        return "invalid name"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "path with '..'"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "device or fifo"
    return None


def _is_zip(archive: Path) -> bool:
    """Whether archive is a zip, by its first bytes: zipfile.is_zipfile also says yes to a tar ending in a zip."""
    with open(archive, "rb") as handle:
        return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty zip


def _relative(name: str, member_root: str, keep: tuple[str, ...]) -> PurePosixPath | None:
    """The path of member name below member_root, or None when member_root or keep leave it out."""
    path, root = PurePosixPath(name), PurePosixPath(member_root) if member_root else None
    if root is not None and root != path and root not in path.parents:
        return None
    relative = path.relative_to(root) if root is not None else path
    if keep and not any(relative.parts[: len(PurePosixPath(k).parts)] == PurePosixPath(k).parts for k in keep):
        return None
    return relative


def _selected(archive: Path, members, problem, names, member_root: str, keep: tuple[str, ...]) -> list:
    """(member, its path below member_root) of the members extract() writes, after every member is checked:
    problem(member) says why one must not be written (the first such is an ArchiveError naming it); names(member)
    gives (the name to show, the name to place it by)."""
    selected = []
    for member in members:
        shown, name = names(member)
        why = problem(member)
        if why:
            raise ArchiveError(f"{archive}: refusing to extract member {shown!r} ({why})")
        relative = _relative(name, member_root, keep)
        if relative is not None:
            selected.append((member, relative))
    if not selected:
        raise ArchiveError(f"{archive} has no members under {member_root!r}")
    return selected


def _extract_tar(archive: Path, tmp: Path, member_root: str, keep: tuple[str, ...]) -> int:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()  # reads the whole index: a truncated archive fails here
        names = attrgetter("name", "name")
        selected = _selected(archive, members, _member_problem, names, member_root, keep)
        tmp.mkdir(parents=True)
        for member, relative in tqdm(selected, desc=f"extract {archive.name}", mininterval=2):
            if str(relative) == ".":
                continue
            member.name = str(relative)  # symlink targets are relative to the member: unaffected
            tar.extract(member, tmp, filter="data")
    return len(selected)


def _extract_zip(archive: Path, tmp: Path, member_root: str, keep: tuple[str, ...]) -> int:
    with zipfile.ZipFile(archive) as zip_file:  # reads the central directory: a truncated archive fails here
        names = attrgetter("orig_filename", "filename")  # zipfile cuts filename at a NUL
        selected = _selected(archive, zip_file.infolist(), _zip_problem, names, member_root, keep)
        tmp.mkdir(parents=True)
        for info, relative in tqdm(selected, desc=f"extract {archive.name}", mininterval=2):
            target = tmp / relative
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if str(relative) == ".":
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # zipfile checks the CRC as the member is read
                with zip_file.open(info) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise ArchiveError(f"cannot extract {archive}: member {info.filename!r}: {error}") from error
    return len(selected)


def extract(archive: Path, dest: Path, member_root: str = "", keep: tuple[str, ...] = ()) -> Path:
    """Extract the members under ``member_root`` of a tar or zip archive into dest, atomically.

    The archive's kind is told by its content, not its name. ``keep`` limits extraction to those
    sub-paths of member_root (e.g. only JPEGImages of VOC, two JSON files of COCO's annotations). Unsafe
    members (absolute paths, '..', device files, tar links leaving the archive, any zip symlink, invalid
    names) are rejected by name before anything is written; a truncated or corrupt archive (a zip
    member failing its CRC included) raises ArchiveError; either way dest is not created.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; remove it to extract {archive.name} again")
    tmp = dest.with_name(f".{dest.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        count = (_extract_zip if _is_zip(archive) else _extract_tar)(archive, tmp, member_root, keep)
        os.replace(tmp, dest)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError, EOFError, OSError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArchiveError(f"cannot extract {archive}: {error}") from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("extracted %d members of %s into %s", count, archive, dest)
    return dest
