"""Folders the toolkit writes for the user (`--out` of extrapolate, report) and may replace.

A written folder carries a manifest of every file in it, with its size and SHA-256. Only a
folder whose every file the manifest lists, with the same content, is the toolkit's own:
replacing it loses nothing of the user's. Any other file (a note the user added, a file
edited since, a folder that merely holds a file with our name) makes the replacement
refused, naming the files, so nothing of the user's is ever deleted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.errors import W2SError
from weak2strong.fileio import read_json, sha256_file, write_json

MANIFEST_FILE = ".w2s-manifest.json"
MANIFEST_FORMAT = "w2s-manifest-1"


def write_manifest(folder: Path, written_by: str) -> None:
    """Record every file under `folder` (a finished staging folder, before its rename).

    A file an earlier manifest in the folder already lists, with the same size and
    modification time, keeps its checksum (a candidate moved whole is not hashed again).
    """
    earlier = _listed(folder)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == MANIFEST_FILE:
            continue
        name = path.relative_to(folder).as_posix()
        stat = path.stat()
        known = earlier.get(name, {})
        same = known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns
        digest = known.get("sha256") if same else None
        files[name] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": digest or sha256_file(path),
        }
    write_json(
        folder / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "by": written_by, "files": files}
    )


def _listed(folder: Path) -> dict[str, dict[str, Any]]:
    """The files the folder's manifest lists; nothing when it has none or a damaged one."""
    try:
        manifest = read_json(folder / MANIFEST_FILE)
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return {}
    files = manifest.get("files")
    if not isinstance(files, dict):
        return {}
    return {
        name: entry
        for name, entry in files.items()
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
    }


def foreign_files(folder: Path) -> list[str]:
    """Files under `folder` that its manifest does not prove the toolkit wrote: unlisted,
    or changed since (another size or checksum). Empty for a folder that may be replaced."""
    listed = _listed(folder)
    foreign = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():  # ours are plain files: a link is the user's
            foreign.append(name)
            continue
        if path.is_dir() or (name == MANIFEST_FILE and listed):
            continue
        entry = listed.get(name)
        if (
            entry is None
            or not path.is_file()
            or entry.get("size") != path.stat().st_size
            or entry.get("sha256") != sha256_file(path)
        ):
            foreign.append(name)
    return foreign


def check_replaceable(folder: Path, what: str) -> None:
    """Refuse (naming the files) to replace a folder holding anything the toolkit did not
    write; an empty folder, or one its manifest fully accounts for, may be replaced."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise W2SError(f"{folder} exists and is not a folder: choose another {what}")
    foreign = foreign_files(folder)
    if foreign:
        names = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise W2SError(
            f"{folder} holds files w2s did not write or that changed since ({names}): it is "
            f"never replaced; move them away or choose another {what}"
        )
