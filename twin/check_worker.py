"""What ``twin check``'s forkserver imports before it forks the workers: the garbage
collector tuned as the console script tunes it (:mod:`twin.gctune`), then the engine, so
that a worker runs as a one-job check's process does."""
from .gctune import tune

tune()

from . import engine  # noqa: E402,F401  (the import is the point)
