"""An uploaded zip of images, unpacked into a folder of the jobs dir: every member's name is
checked (no absolute paths, no '..', no links), the unpacked size and the member count are
limited (no zip bombs), and the folder appears under its name only once complete."""
import os
import shutil
import stat
import tempfile
import zipfile

from ..errors import CaffeError

MAX_MEMBERS = 200_000


def unpack(stream, destination, max_bytes):
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CaffeError(f"the upload is not a zip file ({exc})") from None
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise CaffeError(f"the zip holds {len(members)} entries; at most {MAX_MEMBERS} are taken")
    for member in members:
        _check_name(member)
    if sum(m.file_size for m in members) > max_bytes:
        raise CaffeError(f"the zip unpacks to more than {max_bytes // 2**20} MiB, the limit")
    parent = os.path.dirname(os.path.abspath(destination))
    staging = tempfile.mkdtemp(prefix=".unpacking.", dir=parent)
    try:
        budget = max_bytes
        for member in members:
            target = os.path.join(staging, *member.filename.split("/"))
            if member.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as out:
                budget -= _copy_limited(source, out, budget, max_bytes)
        os.rename(staging, destination)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError)):
            raise CaffeError(f"cannot unpack the zip: {exc}") from None
        raise


def _check_name(member):
    name = member.filename
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ":" in parts[0] or ".." in parts or "\0" in name:
        raise CaffeError(f"the zip entry '{name}' would be written outside its folder; such zips are refused")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise CaffeError(f"the zip entry '{name}' is a symbolic link; such zips are refused")


def _copy_limited(source, out, budget, max_bytes) -> int:
    copied = 0
    while chunk := source.read(1 << 20):
        copied += len(chunk)
        if copied > budget:  # the sizes the zip declared were wrong
            raise CaffeError(f"the zip unpacks to more than {max_bytes // 2**20} MiB, the limit")
        out.write(chunk)
    return copied
