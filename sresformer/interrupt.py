"""SIGINT and SIGTERM as exceptions, so every writer cleans up its temporary file.

Python turns SIGINT into ``KeyboardInterrupt`` but leaves SIGTERM fatal, which kills the
process before ``finally`` blocks run (a partial ``.tmp`` file stays behind). The CLI
installs :func:`install` so that both signals raise. Some C extensions (h5py among them)
can swallow an exception raised inside their callbacks; the signal is therefore also
recorded, and :func:`check` (called by ``atomic_path`` before its rename) refuses to
publish a file written after a signal arrived.
"""

from __future__ import annotations

import signal
import sys

# exit status of a process ended by a signal, by shell convention: 128 + signal number
EXIT_STATUS = {signal.SIGINT: 128 + signal.SIGINT, signal.SIGTERM: 128 + signal.SIGTERM}
_received: list[int] = []


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: ``except Exception`` lets it through)."""


def _on_signal(signum, frame):
    _received.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _unraisable(hook):
    def quiet(unraisable):
        # the exception was raised inside a callback that cannot propagate it (h5py's weakref
        # cleanup, a __del__): it is recorded in _received and raised again by check(), so
        # printing "Exception ignored in ..." would only break the one-line contract
        if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
            return
        hook(unraisable)
    quiet.sresformer = True
    return quiet


def install() -> None:
    """Make SIGINT raise ``KeyboardInterrupt`` and SIGTERM raise :class:`Terminated`, and record both."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if not getattr(sys.unraisablehook, "sresformer", False):
        sys.unraisablehook = _unraisable(sys.unraisablehook)


def received() -> int | None:
    """The first signal received since :func:`install`, or None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise again if a signal arrived, even when a library swallowed its exception."""
    sig = received()
    if sig == signal.SIGTERM:
        raise Terminated()
    if sig is not None:
        raise KeyboardInterrupt()
