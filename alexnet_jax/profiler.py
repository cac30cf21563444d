"""A jax.profiler trace of chosen train steps, written to WORKDIR/plugins/profile/<run>/.

TensorBoard's profile plugin reads it there (tensorboard --logdir WORKDIR); the
perfetto_trace.json.gz beside it opens in https://ui.perfetto.dev.
"""
import os
import shutil
import tempfile

import jax
from absl import logging

from alexnet_jax import paths


class Profiler:
  """Traces the train steps that take the state from start_step to start_step + num_steps."""

  def __init__(self, config, workdir: str, *, process_index: int):
    self._first, self._count = config.start_step, config.num_steps
    self._enabled = self._count > 0 and (config.all_processes or process_index == 0)
    self._workdir = workdir
    self._local = None  # a local folder while a trace runs (the profiler writes local files)

  def maybe_start(self, step: int, state) -> None:
    """Call before dispatching the step that starts from `step` completed steps."""
    if self._enabled and self._local is None and self._first <= step < self._first + self._count:
      jax.block_until_ready(state)  # the steps before are not in the trace
      self._local = tempfile.mkdtemp(prefix='alexnet_jax_profile_')
      jax.profiler.start_trace(self._local, create_perfetto_trace=True)
      logging.info('Profiling steps %d..%d.', step + 1, self._first + self._count)

  def maybe_stop(self, step: int, state) -> None:
    """Call after dispatching a step; `step` steps are then complete or in flight."""
    if self._local is not None and step >= self._first + self._count:
      jax.block_until_ready(state)  # the trace ends once the devices have run the last step
      self.close()

  def close(self) -> None:
    """Stops a running trace and copies it into the workdir."""
    if self._local is None:
      return
    jax.profiler.stop_trace()
    source = os.path.join(self._local, 'plugins', 'profile')
    target = os.path.join(self._workdir, 'plugins', 'profile')
    for run in os.listdir(source):
      paths.copy_folder(os.path.join(source, run), os.path.join(target, run))
      logging.info('Profile written to %s.', os.path.join(target, run))
    shutil.rmtree(self._local, ignore_errors=True)
    self._local = None
