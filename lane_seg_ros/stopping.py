"""Ctrl-C and SIGTERM end a command cleanly, however it was started."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (elsewhere signals cannot be handled).

    SIGINT too, because a process started in the background by a script (`cmd &`) inherits SIGINT as ignored,
    and Python then never turns Ctrl-C into KeyboardInterrupt: `lane-seg demo`, run that way, could not stop
    its recorder.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
