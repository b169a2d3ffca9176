"""Atomic file output: write to a temporary file beside the target, rename on success.

A reader never sees a half-written file, and a failure leaves nothing behind (privacy
fails closed: no partially anonymized image appears under the requested name).

>>> from pathlib import Path
>>> import tempfile
>>> target = Path(tempfile.mkdtemp()) / "a.txt"
>>> with atomic_output(target) as temporary:
...     _ = temporary.write_text("done")
>>> target.read_text()
'done'
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

#: Names :func:`atomic_output` gives its temporary files: ``.STEM.XXXXXXXX.partSUFFIX``
#: (``XXXXXXXX``: :func:`tempfile.mkstemp`'s random part).
TEMPORARY_NAME = re.compile(r"^\..*\.[a-z0-9_]{8}\.part(\.[^./]*)?$")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that pick a format
    by extension still work); rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(temporary)
        fsync_file(temporary)  # the bytes are on disk before the name points at them
        os.replace(temporary, path)
        fsync_folder(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def fsync_file(path: str | os.PathLike[str]) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform and file system)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_output`."""
    return bool(TEMPORARY_NAME.match(Path(path).name))


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed run left anywhere under ``folder``; returns them."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for path in sorted(Path(folder).rglob(".*")):
        if path.is_file() and is_temporary(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
