"""Imported by the forkserver of ``twin check`` (``multiprocessing.set_forkserver_preload``):
the engine imported and its kernels loaded once (:func:`twin.check.warm_up`), so that each
worker, a fork of the server, starts warm. Warming up is this module's only purpose."""
from .check import warm_up

warm_up()
