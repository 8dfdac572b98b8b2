"""Errors a user can cause, each carrying the cause and the fix.

The CLI turns a :class:`UserError` into an ``error:`` line and a ``fix:`` line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """A problem in the user's configuration or input, with a suggested fix."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause} ({fix})" if fix else cause)


class ConfigError(UserError):
    """A protocol, spec or parameter that cannot be used as given."""


class PluginError(UserError):
    """A plugin that clashes with another, or breaks the component contract."""


class DataError(UserError):
    """A dataset that cannot serve the protocol (too small, unreadable, wrong shape)."""


class ComponentError(PluginError):
    """A component's own code raised while the run was executing; the traceback is kept for its author."""

    def __init__(self, who: str, action: str, exc: BaseException) -> None:
        import traceback

        self.traceback = "".join(traceback.format_exception(exc))
        super().__init__(
            f"{who} raised {type(exc).__name__}: {exc} (in {action})",
            "fix or report the plugin; finished generations are kept",
        )

    def save_traceback(self) -> Path:
        """Write the traceback to a file of its own, for an error that no run's failures.jsonl records."""
        import tempfile

        fd, name = tempfile.mkstemp(prefix="collapse-bench-traceback-", suffix=".txt")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(self.traceback)
        return Path(name)


#: ``errno`` values that mean "no room left to write", whatever the cause: a full disk, an
#: exhausted quota, or a file-size limit (``ulimit -f``).
_NO_ROOM = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its disk quota", errno.EFBIG: "hit the file-size limit"}


def no_room(exc: BaseException) -> OSError | None:
    """The ``OSError`` meaning "no room to write" behind ``exc`` (itself or a cause), else ``None``.

    Plugins often wrap the ``OSError`` of a failed write in their own exception, so the chain of
    causes is searched, not only ``exc``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_ROOM:
            return current
        current = current.__cause__ or current.__context__
    return None


class DiskFullError(UserError):
    """A folder the run writes to has no room left; what was finished is kept and resumes."""

    def __init__(self, what: str, folder: Path | str, exc: OSError) -> None:
        self.what, self.folder = what, str(folder)
        limit = " (`ulimit -f`)" if exc.errno == errno.EFBIG else ""
        super().__init__(
            f"the disk of the {what} {self.folder!r} {_NO_ROOM[exc.errno]}{limit}: {exc.strerror}",
            "free space there (`collapse-bench cache prune --older-than DAYS` removes cached steps) or choose "
            "another folder, then repeat the same command: every finished step is kept and is not recomputed",
        )


@contextmanager
def writing(what: str, folder: Path | str) -> Iterator[None]:
    """Turn "no room to write" raised inside the block into a :class:`DiskFullError` naming ``folder``."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        full = no_room(exc)
        if full is None:
            raise
        raise DiskFullError(what, folder, full) from exc
