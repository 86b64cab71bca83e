"""The one error type that reaches the user: bad input, reported as file + field."""
from __future__ import annotations


class TwinInputError(Exception):
    """Invalid user input. The CLI prints ``error: FILE: FIELD: MESSAGE`` and exits 2."""

    def __init__(self, file: str, field: str, message: str):
        self.file = str(file)
        self.field = field
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        """The report on one line (messages quoting a file's text may hold line breaks)."""
        where = f"{self.file}: {self.field}" if self.field else self.file
        return " ".join(f"{where}: {self.message}".splitlines())


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a cancelled CI job), raised where Ctrl-C would be: the same
    clean-up (worker processes stopped, scratch files removed, nothing half-written) and
    one line, exit 143 (``twin.cli``). A run handles both signals itself
    (``twin.run_end``): it ends whole, marked incomplete."""


# Signals the command line's handlers turned into exceptions (:func:`raise_signal`). Python
# runs a handler between any two bytecodes, also inside a finalizer or a weakref callback
# that the garbage collector is running; an exception raised there is printed as
# "Exception ignored in ..." and lost, and the command would carry on as if no Ctrl-C had
# come. Kept here, a signal is honoured again at the next checkpoint: a run's start
# (``twin.run_end``) and the command's end (``twin.cli``).
_PENDING: list = []


def raise_signal(signum, frame=None):  # noqa: ARG001  (a signal handler's signature)
    """The command line's handler of SIGINT and SIGTERM: remember the signal, raise
    KeyboardInterrupt (SIGINT) or :class:`Terminated` (SIGTERM)."""
    import signal

    _PENDING.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def pending_signal() -> int:
    """The last signal :func:`raise_signal` took (0: none since :func:`clear_signals`)."""
    return _PENDING[-1] if _PENDING else 0


def clear_signals() -> None:
    _PENDING.clear()


def did_you_mean(word: str, candidates, n: int = 3) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the near matches of ``word``, else ``""``."""
    import difflib  # only when there is something to suggest (12 ms to import)

    near = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=0.6)
    if not near:
        return ""
    return "; did you mean " + " or ".join(repr(x) for x in near) + "?"
