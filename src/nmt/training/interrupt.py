"""Ctrl-C and SIGTERM (a cluster's preemption) during training: finish the step, save, and stop cleanly."""

from __future__ import annotations

import signal
import threading


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving last.pt; the message says how to resume."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for a process ended by a signal


class StopRequests:
    """While active, SIGINT and SIGTERM only set `signal` (the trainer checks it between steps); a second one
    stops at once, for a user who does not want to wait for the step and the save."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopRequests:
        # Handlers can only be installed from the main thread (a trainer in a worker thread just goes without).
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
