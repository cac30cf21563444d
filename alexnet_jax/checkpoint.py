"""Orbax checkpoints under WORKDIR/checkpoints/<step>: the TrainState, the data position, the config.

The only module that touches Orbax.
"""
import json
import os

import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(ValueError):
  """A checkpoint or workdir that cannot be used as asked."""


def _abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


class Checkpoints:
  """Saves asynchronously every checkpoint.every_steps; restores the latest onto any mesh."""

  def __init__(self, workdir: str, config):
    self._workdir = workdir
    self._config = config
    self._manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, 'checkpoints')),
        options=ocp.CheckpointManagerOptions(max_to_keep=config.checkpoint.keep, create=True))

  def write_config(self) -> None:
    if jax.process_index() == 0:
      path = os.path.join(self._workdir, 'config.json')
      with open(path + '.tmp', 'w') as f:
        f.write(self._config.to_json(indent=2))
      os.replace(path + '.tmp', path)

  def restore_latest(self, state):
    step = self._manager.latest_step()
    if step is None:
      return None
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(state)), meta=ocp.args.JsonRestore()))
    logging.info('Resumed from %s at step %d.', self._workdir, step)
    return restored.state

  def save(self, step: int, state, top1=None, force: bool = False) -> None:
    meta = {'step': int(step), 'data_position': int(step), 'top1': top1,
            'config': json.loads(self._config.to_json())}
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      meta=ocp.args.JsonSave(meta)), force=force)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def init_from(config, state, model):  # pylint: disable=unused-argument
  """The state unchanged when config.init_from is empty."""
  if config.init_from:
    raise CheckpointError('init_from is not supported yet.')
  return state


def preemption_agreed(step: int, requested: bool) -> bool:  # pylint: disable=unused-argument
  return requested
