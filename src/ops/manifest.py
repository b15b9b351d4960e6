"""A backup set's manifest, ``backup.json``: what the set holds, each file's size and SHA-256."""

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

MANIFEST = "backup.json"
STATUS = "status.json"  # written after each backup or verification; not listed in the manifest
FORMAT = 1
READ_SIZE = 1024 * 1024


class SetDamaged(Exception):
    """The set on disk is not the one its manifest describes (the message names the file)."""


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def timestamp(iso: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 time written by ``utc_now``."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


class HashingWriter:
    """A binary file that counts and hashes every byte written to it (under gzip, say)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self._sha.update(data)
        self.bytes += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Flush to disk and close."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    @property
    def entry(self) -> dict:
        """The manifest entry of the file written."""
        return {"bytes": self.bytes, "sha256": self._sha.hexdigest()}


def file_digest(path: Path) -> dict:
    """Size and SHA-256 of a file on disk, read in blocks."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(READ_SIZE):
            sha.update(block)
            size += len(block)
    return {"bytes": size, "sha256": sha.hexdigest()}


def read(set_dir: Path) -> dict:
    """The manifest of a set; SetDamaged when there is none or it cannot be read."""
    path = Path(set_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise SetDamaged(f"{path}: no such file; is {set_dir} a backup set?") from None
    except (OSError, ValueError) as exc:
        raise SetDamaged(f"{path}: cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise SetDamaged(f"{path}: not a backup manifest (no \"files\")")
    return manifest


def write(set_dir: Path, manifest: dict, name: str = MANIFEST) -> None:
    """Write ``manifest`` (or the status) atomically: a temporary file renamed over the old."""
    path = Path(set_dir) / name
    tmp = path.with_name(f".{name}.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check(set_dir: Path) -> dict:
    """Check every file of the set against the manifest: none missing, none extra, every size
    and SHA-256 as recorded. Returns the manifest; raises SetDamaged naming the first file that
    is not as recorded."""
    set_dir = Path(set_dir)
    manifest = read(set_dir)
    listed = manifest["files"]
    present = {p.relative_to(set_dir).as_posix() for p in set_dir.rglob("*") if p.is_file()}
    present -= {MANIFEST, STATUS}
    for rel in sorted(listed):
        if rel not in present:
            raise SetDamaged(f"{set_dir / rel}: missing (listed in {MANIFEST})")
    for rel in sorted(present - set(listed)):
        raise SetDamaged(f"{set_dir / rel}: not listed in {MANIFEST} (a file added to the set)")
    for rel, expected in sorted(listed.items()):
        found = file_digest(set_dir / rel)
        if found != {"bytes": expected.get("bytes"), "sha256": expected.get("sha256")}:
            raise SetDamaged(f"{set_dir / rel}: checksum does not match {MANIFEST} "
                             f"({found['bytes']} bytes, sha256 {found['sha256'][:16]}…; "
                             f"expected {expected.get('bytes')} bytes, sha256 "
                             f"{str(expected.get('sha256'))[:16]}…)")
    return manifest
