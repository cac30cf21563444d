"""train_and_evaluate(config, workdir): wiring of data, mesh, state, steps, metrics and checkpoints."""
import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging

from alexnet_jax import checkpoint
from alexnet_jax import checksums
from alexnet_jax import classes
from alexnet_jax import errors
from alexnet_jax import input_pipeline
from alexnet_jax import metrics as metrics_lib
from alexnet_jax import model as model_lib
from alexnet_jax import optim
from alexnet_jax import parallel
from alexnet_jax import pictures
from alexnet_jax import preemption as preemption_lib
from alexnet_jax import profiler as profiler_lib
from alexnet_jax import train_step as step_lib
from alexnet_jax import workdir as workdir_lib


_DIVERGED_ADVICE = ('the last good checkpoint is kept. Lower --config.optimizer.learning_rate or '
                    'add --config.optimizer.warmup_steps.')


class NonFiniteLossError(errors.Error, RuntimeError):
  """The training loss became NaN or infinite."""

  def __init__(self, message: str, first_bad_step: int):
    super().__init__(message)
    self.first_bad_step = first_bad_step  # checkpoints from this step on hold diverged parameters


def evaluate(eval_step, params, config, mesh, on_batch=None) -> dict:
  """Exact metrics over the whole eval split: padded rows are masked out of the sums.

  on_batch(batches done), if given, is called after each batch is dispatched (progress).
  """
  batches = input_pipeline.create_eval_iterator(config.data, seed=config.seed,
                                                num_classes=config.model.num_classes)
  totals = None
  for done, batch in enumerate(parallel.prefetch(batches, mesh), 1):
    # One eval step at a time: independent steps (same params, other batches) would otherwise
    # run at once, and XLA:CPU's per-device threads of two programs can wait on each other's
    # collectives until its 40 s rendezvous timeout aborts the process (seen under load).
    sums = jax.block_until_ready(eval_step(params, batch))
    totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
    if on_batch is not None:
      on_batch(done)
  return metrics_lib.from_sums(jax.device_get(totals))


def _schedule_steps(config, info) -> tuple[int, int]:
  steps_per_epoch = max(1, info.num_train_examples // config.data.batch_size)
  total = config.total_steps or math.ceil(config.num_epochs * steps_per_epoch)
  return steps_per_epoch, total


def mesh_and_data(config):
  """(mesh, dataset info), checked: the batch and layers split over the mesh, the classes fit."""
  mesh = parallel.make_mesh(config.mesh)
  parallel.check_divisibility(mesh, batch_size=config.data.batch_size,
                              num_classes=config.model.num_classes, hidden=config.model.fc_width)
  info = input_pipeline.get_dataset_info(config.data, num_classes=config.model.num_classes)
  if info.num_classes != config.model.num_classes:
    raise errors.ConfigError(f'the dataset has {info.num_classes} classes but model.num_classes='
                     f'{config.model.num_classes}; set --config.model.num_classes={info.num_classes}.')
  return mesh, info


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains and evaluates as the config says; returns the last eval metrics."""
  mesh, info = mesh_and_data(config)
  accumulate = config.optimizer.get('accumulate_steps', 1)
  if config.data.batch_size % (mesh.devices.size * max(1, accumulate)):
    raise parallel.MeshError(
        f'optimizer.accumulate_steps={accumulate}: each of the {mesh.devices.size} devices holds '
        f'{config.data.batch_size // mesh.devices.size} examples of data.batch_size='
        f'{config.data.batch_size}, not a multiple of {accumulate}; choose accumulate_steps that '
        'divides it.')
  steps_per_epoch, total_steps = _schedule_steps(config, info)
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=steps_per_epoch,
                                 total_steps=total_steps)
  optim.check(config.optimizer, eval_every_steps=config.eval_every_steps)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = model_lib.build(config.model)
  ema_decay = config.optimizer.get('ema_decay', 0.0)
  # The state first: a bad model key fails before the workdir is touched.
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=config.data.image_size,
                                             seed=config.seed, ema=ema_decay > 0)
  train_step = step_lib.make_train_step(
      model, tx, mesh, specs, seed=config.seed, label_smoothing=config.label_smoothing,
      accumulate_steps=config.optimizer.get('accumulate_steps', 1), ema_decay=ema_decay)
  eval_step = step_lib.make_eval_step(model, mesh, specs.params)
  primary = jax.process_index() == 0
  # The lock: a second run on the workdir stops here. The cleanups run last in, first out.
  with workdir_lib.lock(workdir, primary=primary), contextlib.ExitStack() as cleanups:
    state, ckpts, writer = _resume(config, workdir, primary, state)
    _close_at_exit(cleanups, writer.close)
    _close_at_exit(cleanups, ckpts.close)  # waits for the last save; its errors surface here
    if primary:  # so that the run can be used when its data is gone
      classes.write(workdir, info.class_ids)
    start_step = int(state.step)
    # The train metrics of the steps after the last log point: the first point after a resume
    # averages the same steps as an uninterrupted run (float32, as the step returned them).
    carried = [{k: np.float32(v) for k, v in m.items()}
               for m in (ckpts.log_window(start_step) if start_step else [])]
    preemption = preemption_lib.Preemption()
    _close_at_exit(cleanups, preemption.close)
    profiler = profiler_lib.Profiler(config.profile, workdir, process_index=jax.process_index())
    _close_at_exit(cleanups, profiler.close)
    batches = parallel.prefetch(itertools.islice(input_pipeline.create_train_iterator(
        config.data, seed=config.seed, num_classes=config.model.num_classes,
        start_step=start_step), max(0, total_steps - start_step)), mesh)
    _close_at_exit(cleanups, batches.close)  # first: stops the prefetch thread before the rest
    logging.info('Training steps %d..%d (%d per epoch) on mesh %s, %d parameters.', start_step,
                 total_steps, steps_per_epoch, dict(mesh.shape), model_lib.count_params(state.params))
    try:
      run = _Run(train_step, eval_step, schedule, writer, ckpts, preemption, profiler, config, mesh,
                 total_steps)
      state, eval_metrics = _loop(run, state, batches, start_step, carried)
    except NonFiniteLossError as e:  # so that a resume starts from parameters with a finite loss
      ckpts.set_aside(from_step=e.first_bad_step, folder='diverged_checkpoints')
      raise
  return eval_metrics


def _close_at_exit(cleanups: contextlib.ExitStack, close: Callable[[], None]) -> None:
  """Pushes close() on `cleanups`: if it raises, the later cleanups still run, and the first error
  (the run's, else the first failed close's) is the one that propagates; the others are logged."""
  def exit_(unused_type, error, unused_traceback):
    try:
      close()
    except Exception as e:  # pylint: disable=broad-except
      if error is None:
        raise
      name = getattr(close, '__qualname__', close)
      logging.error('%s also failed: %s: %s', name, type(e).__name__, e)
  cleanups.push(exit_)


def _resume(config, workdir: str, primary: bool, state):
  """(state, checkpoints, writer): the newest good checkpoint, else init_from, else `state`.

  metrics.jsonl and the checkpoints are checked before anything in the workdir is written.
  """
  metrics_lib.check_log(workdir, enabled=primary)
  ckpts = checkpoint.Checkpoints(workdir, config)
  # A workdir's own checkpoint wins over init_from: a fine-tuning run resumes like any other.
  state = ckpts.restore_latest(state) or checkpoint.init_from(config.init_from, state)
  writer = metrics_lib.Writer(workdir, enabled=primary)
  writer.truncate_after(int(state.step))
  ckpts.write_config()
  return state, ckpts, writer


@dataclasses.dataclass(frozen=True)
class _Run:
  """What the loop runs with: the jitted steps, the schedule and the run's services."""
  train_step: Callable
  eval_step: Callable
  schedule: Callable
  writer: metrics_lib.Writer
  ckpts: checkpoint.Checkpoints
  preemption: preemption_lib.Preemption
  profiler: profiler_lib.Profiler
  config: Any
  mesh: jax.sharding.Mesh
  total_steps: int


def _loop(run: _Run, state, batches, step: int, carried):
  """Dispatches step N before fetching step N-1's metrics, so the host never stalls the devices."""
  pending, window, eval_metrics = None, list(carried), {}
  timed = -len(carried)  # + len(window): the steps run since window_start
  window_start = time.perf_counter()
  log_every = max(1, run.config.log_every_steps)
  while step < run.total_steps and not run.preemption.reached(step):
    run.profiler.maybe_start(step, state)
    state, step_metrics = run.train_step(state, next(batches))
    step += 1
    run.profiler.maybe_stop(step, state)
    if pending is not None:
      _check_finite(pending)
      window.append(pending[1])
    pending = (step, jax.device_get(step_metrics) if step % log_every == 0 else step_metrics)
    if step % log_every == 0 or step == run.total_steps:
      _check_finite(pending)
      window.append(pending[1])
      pending = None
      elapsed = time.perf_counter() - window_start
      values = metrics_lib.average(jax.device_get(window))
      lr = float(run.schedule(step - 1)) * optim.plateau_scale(state.opt_state)
      values.update(learning_rate=lr,
                    images_per_sec=(len(window) + timed) * run.config.data.batch_size / elapsed)
      run.writer.write(step, 'train', values)
      eta = (run.total_steps - step) * elapsed / (len(window) + timed)
      logging.info(metrics_lib.progress_line(step, run.total_steps, values, eta))
      window, window_start, timed = [], time.perf_counter(), 0
    top1 = None
    every = run.config.eval_every_steps
    if (every and step % every == 0) or step == run.total_steps:
      eval_metrics = evaluate(run.eval_step, state.params, run.config, run.mesh)
      if state.ema_params is not None:  # the moving average's metrics beside the raw ones
        ema_metrics = evaluate(run.eval_step, state.ema_params, run.config, run.mesh)
        eval_metrics.update({f'ema_{k}': v for k, v in ema_metrics.items() if k != 'count'})
      top1 = eval_metrics['top1']
      if every and step % every == 0:  # the cadence's evaluations (not an extra one at the end:
        # a run resumed with a longer budget then takes the same decisions as one run straight)
        state = state.replace(opt_state=optim.observe_eval(state.opt_state, eval_metrics,
                                                           run.config.optimizer))
      run.writer.write(step, 'eval', eval_metrics)
      run.writer.image(step, 'conv1/filters', pictures.filter_grid(
          state.params['conv1']['kernel'], model_lib.build(run.config.model).option('groups')))
      logging.info('eval at step %d: %s', step, eval_metrics)
      window_start = time.perf_counter()
    if step % run.config.checkpoint.every_steps == 0 or step == run.total_steps:
      if pending is not None:  # never save a state whose loss is not yet known to be finite
        _check_finite(pending)
      _save(run, step, state, window, pending, top1)
  if pending is not None:
    _check_finite(pending)
  if step < run.total_steps:  # preempted: save where we are, and the same command resumes here
    _save(run, step, state, window, pending)
    logging.warning('Preempted at step %d; checkpoint saved. Run the same command to resume.', step)
  return state, eval_metrics


def _save(run: _Run, step: int, state, window, pending, top1=None) -> None:
  """Saves unless a parameter is NaN or infinite: a finite loss can still give inf parameters."""
  if not checksums.all_finite(state.params):
    raise NonFiniteLossError(
        f'the parameters are not finite after step {step}; {_DIVERGED_ADVICE}', step)
  unlogged = window + ([] if pending is None else [pending[1]])
  run.writer.sync()  # the metrics up to this step reach the disk before the checkpoint does
  run.ckpts.save(step, state, top1, log_window=[{k: float(v) for k, v in m.items()}
                                           for m in jax.device_get(unlogged)])


def _check_finite(pending) -> None:
  step, values = pending
  loss = float(values['loss'])
  if not np.isfinite(loss):
    raise NonFiniteLossError(
        f'the training loss is {loss} at step {step}; {_DIVERGED_ADVICE}',
        step - 1)  # the loss of step s is that of the parameters after step s - 1
