"""What ``twin check``'s forkserver imports before it forks the workers: the garbage
collector and the BLAS threads tuned as the console script tunes them
(:mod:`twin.proctune`), then the engine, so that a worker runs as a one-job check's
process does."""
from .proctune import tune

tune()

from . import engine  # noqa: E402,F401  (the import is the point)
