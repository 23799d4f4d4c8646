"""Files in the runtime dir are opened without following symbolic links.

Whoever can write the runtime dir could plant a link there; followed, it would
make dbswap truncate, overwrite, append to or read whatever file it points
at, as the user the app runs as. So every file there is opened with
``O_NOFOLLOW`` and a link is refused with one message.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

NOT_A_LINK = (
    "it is a symbolic link, which dbswap does not follow in its runtime dir; point "
    "DBSWAP_RUNTIME_DIR at the real directory"
)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_file(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link (``OSError`` ELOOP saying so)."""
    try:
        return os.open(path, flags | _NO_FOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(path) from None
        raise


def link_refused(path: str | os.PathLike[str]) -> OSError:
    return OSError(errno.ELOOP, f"{Path(path).name}: {NOT_A_LINK}")


def read_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit`` bytes of a file (refusing a link); ``FileNotFoundError`` if none."""
    fd = open_file(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
