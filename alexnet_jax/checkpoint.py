"""Orbax checkpoints under WORKDIR/checkpoints/<step> (the only module that touches Orbax): the
TrainState, the config, a file list and array checksums, by which a damaged step is found, reported
and moved aside before Orbax opens it, and the newest good one used. Also: init_from, load_params."""
import asyncio
import json
import math
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from alexnet_jax import checksums
from alexnet_jax import errors
from alexnet_jax import manifest
from alexnet_jax import paths
from alexnet_jax import workdir as workdir_lib
from alexnet_jax.parallel import everywhere

STATE, META = workdir_lib.STEP_STATE, 'meta'  # the items of a step folder
CORRUPT_DIR = 'corrupt_checkpoints'  # WORKDIR/corrupt_checkpoints/<step>: steps that failed checks
CLASSIFIERS = ('fc8', 'fc10')  # AlexNet's, the CIFAR-10 nets': init_from re-initialises it


class CheckpointError(errors.Error, ValueError):
  """A checkpoint or workdir that cannot be used as asked."""


NEVER_COMMITTED = 'never committed (its save was cut short)'
_GOOD, _DAMAGED, _UNFINISHED = 0, 1, 2  # a step's verdict, as process 0 shares it


def _damage(step_dir: str):
  """None if a step is good, else what is wrong with it in a few words (NEVER_COMMITTED for one
  that Orbax never committed).

  On GCS, Orbax writes a step straight into its folder and commits it by writing its commit file
  last: a folder without one is a save cut short, as a temporary folder never renamed to its step
  is on a local disk.
  """
  commit = os.path.join(step_dir, ocp.path.atomicity.COMMIT_SUCCESS_FILE)
  if paths.is_remote(step_dir) and not paths.exists(commit):
    return NEVER_COMMITTED
  return manifest.damage(step_dir)


def _from_process_0(verdicts: dict) -> dict:
  """Process 0's {step: verdict} on every process (the others pass {})."""
  if jax.process_count() == 1:
    return verdicts
  count = int(multihost_utils.broadcast_one_to_all(np.int32(len(verdicts))))
  if not count:
    return {}
  table = np.array(sorted(verdicts.items()) or np.zeros((count, 2)), np.int32).reshape(count, 2)
  return {int(s): int(v) for s, v in multihost_utils.broadcast_one_to_all(table)}


def _listing(directory: str):
  """Orbax's temporary path class, which lists a step's files right after Orbax commits it."""
  paths = ocp.path.atomicity
  base = paths.CommitFileTemporaryPath if '://' in directory else paths.AtomicRenameTemporaryPath

  class Listed(base):
    async def finalize(self, *args, **kwargs):
      step = os.path.dirname(os.fspath(self.get_final())) == directory  # not one of its items
      known = step and await asyncio.to_thread(manifest.fingerprints, os.fspath(self.get()))
      await super().finalize(*args, **kwargs)
      if step:  # the rename keeps the files' stat: only those the commit wrote are read again
        await asyncio.to_thread(manifest.write, os.fspath(self.get_final()), known)
  return Listed


def _manager(directory: str, keep: int = 1, read_only: bool = False) -> ocp.CheckpointManager:
  """The last `keep` steps and the best by eval top-1 (BestN alone would keep the N best)."""
  top1 = lambda metrics: metrics.get('top1', -math.inf)  # steps saved without an eval rank last
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=keep),
      ocp.checkpoint_managers.BestN(get_metric_fn=top1, n=1,
                                    keep_checkpoints_without_metrics=False)])
  options = ocp.CheckpointManagerOptions(create=not read_only, read_only=read_only, best_fn=top1,
                                         preservation_policy=policy,
                                         temporary_path_class=_listing(directory))
  return ocp.CheckpointManager(
      directory, options=options,
      item_handlers={STATE: ocp.PyTreeCheckpointHandler(), META: ocp.JsonCheckpointHandler()})


def _shapes(tree) -> dict:
  return {jax.tree_util.keystr(path): tuple(x.shape)
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first_line(error: Exception) -> str:
  return f'{type(error).__name__}: {(str(error).strip().splitlines() or [""])[0][:200]}'


def _restore_items(manager, step: int, state_args=None):
  """The meta item of a step, and its state item when state_args say how to restore it."""
  state = {} if state_args is None else {STATE: state_args}
  return manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}, **state))


class Checkpoints:
  """Saves asynchronously; restores the newest good step onto any mesh; keeps last N + best."""

  def __init__(self, workdir: str, config):
    if config.checkpoint.keep < 1:
      raise CheckpointError(f'checkpoint.keep={config.checkpoint.keep}: keep at least 1 checkpoint.')
    self._workdir, self._config = workdir, config
    self._dir = paths.absolute(os.path.join(workdir, 'checkpoints'))
    self._opened = None  # Orbax reads every step when it opens: only once damaged ones are aside

  @property
  def _manager(self) -> ocp.CheckpointManager:
    self._opened = self._opened or _manager(self._dir, self._config.checkpoint.keep)
    return self._opened

  def write_config(self) -> None:
    if jax.process_index() == 0:
      workdir_lib.write_atomic(os.path.join(self._workdir, 'config.json'),
                               self._config.to_json(indent=2).encode())

  def restore_latest(self, state):
    """The newest good checkpoint placed like `state` (the new mesh), or None in a new workdir."""
    steps, damaged, unfinished = self._screen()
    if damaged and len(damaged) + len(unfinished) == len(steps):
      found = '; '.join(f'step {s}: {what}' for s, what in sorted(damaged.items()))
      raise CheckpointError(f'no checkpoint in {self._dir} is usable ({found}); nothing was moved. '
                            'Move them away to start afresh, or use another --workdir.')
    self._move(sorted(damaged) + unfinished, CORRUPT_DIR)
    corrupt = []
    for step in reversed(self._manager.all_steps()):
      try:
        restored = self._restore(step, state)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # any damage: take the step before
        logging.warning('Checkpoint %s/%d is corrupt or truncated (%s); trying the one before.',
                        self._dir, step, _first_line(e))
        restored = None
      if not everywhere(restored is not None):
        corrupt.append(step)
        continue
      self._move(corrupt, CORRUPT_DIR)
      logging.info('Resumed from %s/%d.', self._dir, step)
      return restored
    if corrupt:
      raise CheckpointError(f'none of the {len(corrupt)} checkpoints in {self._dir} can be '
                            'restored (see the warnings); move them away to start afresh.')
    return None

  def _screen(self):
    """(steps on disk, {step: damage} of those whose files differ from their list, [steps Orbax
    never committed]), before Orbax opens any. Process 0 reads the files (a SHA-256 of each) and
    tells the others its verdicts: the workdir is shared, and N hosts need not read it N times."""
    found = {}
    if jax.process_index() == 0:
      start = time.perf_counter()
      steps = sorted(int(n) for n in paths.listdir(self._dir) if n.isdigit())
      found = {s: _damage(os.path.join(self._dir, str(s))) for s in steps}
      if steps:
        logging.info('Checked the files of %d checkpoints in %s against their lists in %.1f s '
                     '(process 0 alone; the others take its verdicts).', len(steps), self._dir,
                     time.perf_counter() - start)
    code = lambda what: (_GOOD if what is None else
                         _UNFINISHED if what == NEVER_COMMITTED else _DAMAGED)
    verdicts = _from_process_0({s: code(what) for s, what in found.items()})
    damaged = {s: found.get(s, 'damaged (see process 0)') for s, v in verdicts.items()
               if v == _DAMAGED}
    unfinished = [s for s, v in verdicts.items() if v == _UNFINISHED]
    for step, what in damaged.items():
      logging.warning('Checkpoint %s/%d is corrupt: %s.', self._dir, step, what)
    for step in unfinished:
      logging.warning('Checkpoint %s/%d was %s: set aside, as an unfinished save is on a local '
                      'disk.', self._dir, step, NEVER_COMMITTED)
    return sorted(verdicts), damaged, unfinished

  def _restore(self, step: int, state):
    meta = _restore_items(self._manager, step)[META]
    self._check_compatible(step, meta['config'], self._manager.item_metadata(step)[STATE], state)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            state)
    restored = _restore_items(self._manager, step, ocp.args.PyTreeRestore(
        abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract)))[STATE]
    found = checksums.of_state(restored)
    if found != meta['checksums'] or int(checksums.host_value(restored.step)) != step:
      raise OSError(f'checksums {found} differ from the saved {meta["checksums"]}')
    return restored

  def _check_compatible(self, step: int, saved: dict, metadata, state) -> None:
    """Raises CheckpointError if the checkpoint is of another model (shapes) or optimizer."""
    here = json.loads(self._config.to_json())
    keys = [('model', k) for k in sorted(saved['model'])] + [('optimizer', 'name'),
                                                             ('optimizer', 'trainable')]
    value = lambda config, a, k: config[a].get(k, 'all' if k == 'trainable' else None)
    diffs = [f'{a}.{k}={value(saved, a, k)!r} there, {value(here, a, k)!r} here' for a, k in keys
             if value(saved, a, k) != value(here, a, k)]
    saved_ema, ema = 'ema_params' in metadata, getattr(state, 'ema_params', None) is not None
    if saved_ema != ema:
      diffs.append(f'optimizer.ema_decay: {"a" if saved_ema else "no"} moving average of the '
                   f'parameters there, {"one" if ema else "none"} here')
    elif (sorted(_shapes(metadata['opt_state']).values())
          != sorted(_shapes(state.opt_state).values())):
      diffs.append('optimizer: another optimizer state there (optimizer.schedule=\'plateau\' '
                   'keeps one of its own)')
    shapes = _shapes(metadata['params']), _shapes(state.params)
    if shapes[0] == shapes[1] and not any(d.startswith('optimizer') for d in diffs):
      return  # other shape-neutral keys (lrn, dropout, ...) may change on resume
    diffs = diffs or ['the parameter shapes differ']
    raise CheckpointError(
        f'workdir {self._workdir} holds a checkpoint (step {step}) of another model: '
        f'{"; ".join(diffs)}. Resume it with its own config ({self._workdir}/config.json) or '
        'use a new --workdir.')

  def set_aside(self, *, from_step: int, folder: str) -> None:
    """Moves the steps >= from_step (e.g. diverged) to WORKDIR/folder, once saves are done."""
    self._manager.wait_until_finished()
    self._move([s for s in self._manager.all_steps() if s >= from_step], folder)

  def _move(self, steps, folder: str) -> None:
    """Moves steps out of checkpoints/ (kept for a post-mortem); their numbers are free again."""
    if not steps:
      return
    if jax.process_index() == 0:
      workdir_lib.move_aside([os.path.join(self._dir, str(s)) for s in steps],
                             os.path.join(self._workdir, folder))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'alexnet_jax_move_{folder}')
    if self._opened is not None:
      self._opened.reload()

  def save(self, step: int, state, top1=None, log_window=()) -> None:
    """Starts an asynchronous save; the state may be donated once this returns."""
    if step in self._manager.all_steps():  # a preemption right after a regular save
      return
    top1 = None if top1 is None else float(top1)
    meta = {'step': int(step), 'top1': top1, 'file_list': manifest.NAME,
            'checksums': checksums.of_state(state), 'config': json.loads(self._config.to_json()),
            'log_window': list(log_window)}  # train metrics since the last log point
    with workdir_lib.writing(self._dir):  # a failed write, of this save or of the one before
      self._manager.save(step, args=ocp.args.Composite(**{
          STATE: ocp.args.PyTreeSave(state), META: ocp.args.JsonSave(meta)}),
          metrics={} if top1 is None else {'top1': top1}, force=True)

  def log_window(self, step: int) -> list[dict]:
    """The log_window saved with a step ([] for checkpoints written before it was saved)."""
    return _restore_items(self._manager, step)[META].get('log_window', [])

  def close(self) -> None:
    """Waits for the last save; its errors surface here."""
    if self._opened is not None:
      with workdir_lib.writing(self._dir):
        self._opened.wait_until_finished()
        self._opened.check_for_errors()
      self._opened.close()


def _steps_of(path: str, what: str = 'init_from'):
  """(checkpoints folder, steps to try, newest first) of a workdir, checkpoints/ or step folder."""
  path = paths.absolute(path.rstrip('/'))
  if not paths.exists(path):
    raise CheckpointError(f'{what}={path}: no such workdir or checkpoint folder.')
  if workdir_lib.is_step_folder(path):
    return os.path.dirname(path), [int(os.path.basename(path))]
  folder = os.path.join(path, 'checkpoints')
  folder = folder if paths.isdir(folder) else path
  steps = sorted((int(n) for n in paths.listdir(folder) if n.isdigit()), reverse=True)
  if not steps:
    raise CheckpointError(f'{what}={path} holds no checkpoint: give a workdir or a checkpoint '
                          'step folder (WORKDIR/checkpoints/<step>).')
  return folder, steps


def _read_params(manager, step: int, name: str = 'params'):
  """A step's parameters (name='ema_params': their moving average) as host arrays, checked against
  their saved checksum, and its meta."""
  saved = manager.item_metadata(step)[STATE]
  if name not in saved:
    raise CheckpointError(f'step {step} has no moving average of the parameters (trained with '
                          'optimizer.ema_decay=0): leave out --ema, or train with '
                          '--config.optimizer.ema_decay=0.999.')
  tree = saved[name]
  host = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  restored = _restore_items(manager, step, ocp.args.PyTreeRestore(
      item={name: tree}, restore_args={name: host}, partial_restore=True))
  params = restored[STATE][name]
  if checksums.of_params(params, name) != restored[META]['checksums'][name]:
    raise OSError('the parameters do not match their saved checksum')
  return params, restored[META]


def _newest_readable(folder: str, steps, what: str, name: str = 'params'):
  """(params, meta, step) of the first readable step of `steps`; damaged ones are skipped."""
  manager = _manager(folder, read_only=True)
  try:
    for step in steps:
      try:
        return (*_read_params(manager, step, name), step)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except  # a damaged step: take the one before
        logging.warning('%s: checkpoint %s/%d is unreadable (%s).', what, folder, step,
                        _first_line(e))
  finally:
    manager.close()
  raise CheckpointError(f'{what}: no readable checkpoint in {folder} (see the warnings).')


def load_params(path: str, step=None, *, ema: bool = False):
  """(params as numpy arrays, the step, the run's config as a dict) of a trained run.

  path: a workdir or a step folder; step: None (the newest readable), an int, or 'best' (by eval
  top-1); ema: the moving average of the parameters (optimizer.ema_decay) instead. Reads the
  parameters only: no optimizer state, no data, any device count.
  """
  folder, steps = _steps_of(path, what='workdir')
  if step == 'best':
    manager = _manager(folder, read_only=True)
    best = manager.best_step()
    manager.close()
    if best is None:
      raise CheckpointError(f'{path} has no checkpoint saved with an eval top-1, so no best one; '
                            'give --step=N or leave it out for the newest.')
    steps = [best]
  elif step is not None:
    if int(step) not in steps:
      raise CheckpointError(f'{path} has no checkpoint of step {step}; it has steps '
                            f'{sorted(steps)}.')
    steps = [int(step)]
  params, meta, found = _newest_readable(folder, steps, what=f'workdir={path}',
                                         name='ema_params' if ema else 'params')
  return params, found, meta['config']


def init_from(path: str, state):
  """state with another run's parameters (path: its workdir or a step folder); '' leaves it as is.

  Layers of another shape keep their fresh initialisation: only the classifier may differ (another
  num_classes). The optimizer state and the step stay fresh.
  """
  if not path:
    return state
  folder, steps = _steps_of(path)
  saved, _, step = _newest_readable(folder, steps, what=f'init_from={path}')
  params, loaded, fresh = dict(state.params), [], []
  for layer, arrays in state.params.items():
    if layer in saved and _shapes(saved[layer]) == _shapes(arrays):
      params[layer] = jax.tree.map(
          lambda new, old: jax.make_array_from_callback(
              new.shape, new.sharding, lambda index, old=old, new=new: old[index].astype(new.dtype)),
          arrays, saved[layer])
      loaded.append(layer)
    elif layer in CLASSIFIERS:
      fresh.append(layer)
    else:
      raise CheckpointError(
          f'init_from={path}: layer {layer} is {_shapes(saved.get(layer, {}))} there and '
          f'{_shapes(arrays)} here; only the classifier ({"/".join(CLASSIFIERS)}) may differ.')
  logging.info('init_from %s/%d: loaded %s; re-initialised %s.', folder, step, ', '.join(loaded),
               ', '.join(fresh) or 'nothing')
  if getattr(state, 'ema_params', None) is not None:  # the average starts where training does
    # A copy: the train step donates the state, and one buffer cannot be donated twice.
    return state.replace(params=params, ema_params=jax.tree.map(jax.numpy.copy, params))
  return state.replace(params=params)


def write_params_workdir(params: dict, workdir: str, config, class_ids, step: int = 0) -> None:
  """A workdir holding `params` (host arrays) as checkpoint `step`, with a fresh optimizer state,
  config.json and class_names.json: what every tool reads, and what init_from and a resume take.

  config's optimizer.ema_decay is set to 0: the workdir holds no moving average.
  """
  # pylint: disable=g-import-not-at-top  # these build on this module's neighbours
  from alexnet_jax import classes
  from alexnet_jax import model as model_lib
  from alexnet_jax import optim
  from alexnet_jax import parallel
  from alexnet_jax import train_step as step_lib
  import ml_collections
  config = config.copy_and_resolve_references()
  if 'ema_decay' in config.optimizer:
    config.optimizer.ema_decay = 0.0
  # One device: a checkpoint restores onto any mesh, and the run's own may not fit this host.
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=1, model=1)), jax.devices()[:1])
  tx = optim.make_optimizer(config.optimizer, optim.make_schedule(
      config.optimizer, steps_per_epoch=1, total_steps=max(1, step)))
  state, specs = step_lib.create_train_state(model_lib.build(config.model), tx, mesh,
                                             image_size=config.data.image_size, seed=config.seed)
  state = state.replace(step=jax.numpy.full_like(state.step, step),
                        params=parallel.host_to_mesh(params, mesh, specs.params))
  ckpts = Checkpoints(workdir, config)
  ckpts.save(step, state)
  ckpts.close()
  ckpts.write_config()
  classes.write(workdir, class_ids)
