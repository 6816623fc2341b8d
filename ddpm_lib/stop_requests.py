"""Ctrl-C and SIGTERM during training, answered between two steps: a signal asks the training loop
to stop at its next step boundary, so that the state it saves is that of a completed step and a
resume continues exactly (:class:`StopRequests`, used by :meth:`ddpm_lib.training.Trainer.fit`).
Holding signals back while a file is written is :func:`ddpm_lib.files.signals_deferred`.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Dict, Optional

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopRequests:
    """Ctrl-C (SIGINT) and SIGTERM while :meth:`ddpm_lib.training.Trainer.fit` runs in the main thread. The first asks the
    loop to stop at the next step boundary (``signum``); another one while the step is still computing its
    loss and gradients (``phase == "computing"``) raises KeyboardInterrupt at once, and fit then undoes
    that step; during the update of the weights and after the loop it only waits. A signal the process
    ignores stays ignored. Leaving the block restores the handlers found on entering it."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.phase = "boundary"  # "computing" (loss, gradients), "updating" (the weights change), "stopping"
        self.previous: Dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # elsewhere Python cannot set handlers
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if handler is not None and handler != signal.SIG_IGN:  # None: set outside Python
                    self.previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        elif self.phase == "computing":
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def pass_on_sigterm(self, interrupted: bool) -> None:
        """Once fit is done and its checkpoint saved: a SIGTERM it received ends the process as the
        signal's default action does; with a handler of the caller's own (the command line's), that
        handler gets it if the run had completed meanwhile (when fit stopped for it, fit's return is
        the answer). Ctrl-C asked only that the training stop: nothing more to do."""
        if self.signum is None or self.signum != getattr(signal, "SIGTERM", None) or self.signum not in self.previous:
            return
        handler = self.previous[self.signum]
        if handler == signal.SIG_DFL:
            sys.stdout.flush()  # what fit printed reaches a pipe or a log file before the process ends
            sys.stderr.flush()
            signal.raise_signal(self.signum)
        elif callable(handler) and not interrupted:
            handler(self.signum, None)
