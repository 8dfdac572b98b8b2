"""Stopping a run from outside: SIGTERM and SIGHUP are handled like Ctrl-C.

``kill``, SLURM (at the time limit or on ``scancel``), ``docker stop`` and a closed SSH session
send SIGTERM or SIGHUP, whose default action ends the process at once, leaving the manifest
``running`` for good. Inside :func:`stop_signals_interrupt` they raise :class:`Stopped`, a
``KeyboardInterrupt``, so the code that stamps a Ctrl-C'd run ``interrupted`` handles them too.
The process then exits with ``128 + signal number`` (130 for Ctrl-C, 143 for SIGTERM, 129 for
SIGHUP), as a shell reports a process ended by that signal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Signals that ask a run to stop, besides SIGINT (Ctrl-C), which Python already turns into KeyboardInterrupt.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


#: The stop signal last received inside :func:`stop_signals_interrupt`: a library that catches our
#: :class:`Stopped` and raises a plain ``KeyboardInterrupt`` instead (Ray's ``get`` does) loses it.
_received: int | None = None


def exit_code(exc: BaseException | None) -> int:
    """The exit status for a run stopped by ``exc`` (a :class:`Stopped`, or a plain Ctrl-C)."""
    while exc is not None and not isinstance(exc, Stopped):
        exc = exc.__cause__ or exc.__context__
    return 128 + (exc.signum if exc is not None else _received or signal.SIGINT)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` once; a repeat is ignored.

    Ignoring the repeat lets the clean-up (stamping the manifest) finish when a scheduler sends
    the signal twice. Outside the main thread, where handlers cannot be set, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        global _received
        _received = signum
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP wait until it ends, then act as they would have.

    For work that must not be cut in half: a worker process being started whose start-up data is
    cut off by an interrupt prints a traceback of its own (``EOFError``) into the run's output.
    Outside the main thread, where handlers cannot be set, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in (signal.SIGINT, *STOP_SIGNALS)
    }
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        if pending:
            signal.raise_signal(pending[0])  # delivered now, to the handler the block held it from
