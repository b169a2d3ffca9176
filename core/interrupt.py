"""Interruptions (SIGINT, SIGTERM) as one exception, raised in the main thread.

While :func:`signals_interrupt` is active, the first SIGINT or SIGTERM raises
:class:`Interrupted` in the main thread. It derives from :class:`KeyboardInterrupt`, not
from :class:`Exception`, so no ``except Exception`` on the way (a stage's error
handling, a runner's "fail closed on anything") turns it into a failure of the input: it
unwinds every ``with`` and ``finally`` (temporary files are removed, stage threads are
stopped and joined), the engine records the unfinished inputs as ``interrupted`` in the
manifest, and the command line exits with ``128 + signal number`` (130 for SIGINT, 143
for SIGTERM). Further signals are noted and ignored until the block ends, so that clean-up
runs to its end; the signals' previous handlers are restored afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Iterator

#: The signals that interrupt a run.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal.

    Args:
        signum: The signal's number (``signal.SIGINT``, ``signal.SIGTERM``).
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number."""
        return 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def as_interruption(error: BaseException) -> Interrupted:
    """``error`` if it is an :class:`Interrupted`; a plain :class:`KeyboardInterrupt` (raised
    outside :func:`signals_interrupt`) counts as SIGINT."""
    return error if isinstance(error, Interrupted) else Interrupted(signal.SIGINT)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (once) in the main thread inside this
    block (module docstring). Outside the main thread signals cannot be handled: a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if raised:  # the first one is unwinding: let its clean-up finish
            return
        raised = True
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
