"""SIGTERM and multi-host preemption: the loop saves and stops at a step every process agrees on."""
import signal

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils


class Preemption:
  """SIGTERM (TPU VM maintenance, SLURM) -> save at a step every process agrees on, then stop.

  Several processes: JAX's preemption sync (it catches SIGTERM itself, and reached() is True on
  every process at the same step). One process: our own SIGTERM handler.
  """

  def __init__(self):
    self.requested = False
    # jax.distributed.initialize starts the sync service unless this option turned it off.
    self._sync = jax.process_count() > 1 and jax.config.jax_enable_preemption_service
    self._previous = None if self._sync else signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning('SIGTERM received: saving a checkpoint at the next step and stopping.')
    self.requested = True

  def reached(self, step: int) -> bool:
    """To be called at every step by every process."""
    if self._sync:
      return multihost_utils.reached_preemption_sync_point(step)
    if jax.process_count() > 1:  # the service is off: agree through a (blocking) all-gather
      return bool(np.any(multihost_utils.process_allgather(np.int32(self.requested))))
    return self.requested

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
