"""train_and_evaluate(config, workdir): wiring of data, mesh, state, steps, metrics and checkpoints."""
import math
import os
import queue
import signal
import threading
import time

import jax
import numpy as np
from absl import logging

from alexnet_jax import checkpoint
from alexnet_jax import input_pipeline
from alexnet_jax import metrics as metrics_lib
from alexnet_jax import model as model_lib
from alexnet_jax import optim
from alexnet_jax import parallel
from alexnet_jax import train_step as step_lib


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite."""


def _prefetch(batches, mesh, size: int = 2):
  """Moves host batches onto the mesh in a background thread, `size` steps ahead."""
  slots = queue.Queue(maxsize=size)
  done = object()

  def produce():
    try:
      for batch in batches:
        slots.put(parallel.global_batch(mesh, batch))
    except Exception as e:  # pylint: disable=broad-except  # re-raised in the consumer
      slots.put(e)
    slots.put(done)

  threading.Thread(target=produce, daemon=True).start()
  while (item := slots.get()) is not done:
    if isinstance(item, Exception):
      raise item
    yield item


def evaluate(eval_step, params, config, mesh) -> dict:
  """Exact metrics over the whole eval split: padded rows are masked out of the sums."""
  batches = input_pipeline.create_eval_iterator(config.data, seed=config.seed,
                                                num_classes=config.model.num_classes)
  totals = None
  for batch in _prefetch(batches, mesh):
    sums = eval_step(params, batch)
    totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
  return metrics_lib.from_sums(jax.device_get(totals))


def _schedule_steps(config, info) -> tuple[int, int]:
  steps_per_epoch = max(1, info.num_train_examples // config.data.batch_size)
  total = config.total_steps or math.ceil(config.num_epochs * steps_per_epoch)
  return steps_per_epoch, total


class _Preemption:
  """Turns SIGTERM (TPU VM maintenance, SLURM) into a request to save and stop at a step boundary."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning('SIGTERM received: saving a checkpoint at the next step and stopping.')
    self.requested = True

  def reached(self, step: int) -> bool:
    return checkpoint.preemption_agreed(step, self.requested)

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains and evaluates as the config says; returns the last eval metrics."""
  mesh = parallel.make_mesh(config.mesh)
  parallel.check_divisibility(mesh, batch_size=config.data.batch_size,
                              num_classes=config.model.num_classes, hidden=config.model.fc_width)
  info = input_pipeline.get_dataset_info(config.data, num_classes=config.model.num_classes)
  if info.num_classes != config.model.num_classes:
    raise ValueError(f'the dataset has {info.num_classes} classes but model.num_classes='
                     f'{config.model.num_classes}; set --config.model.num_classes={info.num_classes}.')
  steps_per_epoch, total_steps = _schedule_steps(config, info)
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=steps_per_epoch,
                                 total_steps=total_steps)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = model_lib.AlexNet(**config.model)
  ckpts = checkpoint.Checkpoints(workdir, config)  # checks a resumed workdir before any write
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=config.data.image_size,
                                             seed=config.seed)
  state = ckpts.restore_latest(state) or checkpoint.init_from(config, state, model)
  start_step = int(state.step)
  writer = metrics_lib.Writer(workdir, enabled=jax.process_index() == 0)
  writer.truncate_after(start_step)
  ckpts.write_config()
  train_step = step_lib.make_train_step(model, tx, mesh, specs, seed=config.seed,
                                        label_smoothing=config.label_smoothing)
  eval_step = step_lib.make_eval_step(model, mesh, specs)
  batches = _prefetch(input_pipeline.create_train_iterator(
      config.data, seed=config.seed, num_classes=config.model.num_classes,
      start_step=start_step), mesh)
  logging.info('Training steps %d..%d (%d per epoch) on mesh %s, %d parameters.', start_step,
               total_steps, steps_per_epoch, dict(mesh.shape), model_lib.count_params(state.params))
  preemption = _Preemption()
  try:
    state, eval_metrics = _loop(state, batches, train_step, eval_step, schedule, writer, ckpts,
                                preemption, config, mesh, start_step, total_steps)
  finally:
    preemption.restore()
    ckpts.close()
    writer.close()
  return eval_metrics


def _loop(state, batches, train_step, eval_step, schedule, writer, ckpts, preemption, config,
          mesh, step, total_steps):
  """Dispatches step N before fetching step N-1's metrics, so the host never stalls the devices."""
  pending, window, eval_metrics = None, [], {}
  window_start = time.perf_counter()
  log_every = max(1, config.log_every_steps)
  while step < total_steps and not preemption.reached(step):
    state, step_metrics = train_step(state, next(batches))
    step += 1
    if pending is not None:
      _check_finite(pending)
      window.append(pending[1])
    pending = (step, jax.device_get(step_metrics) if step % log_every == 0 else step_metrics)
    if step % log_every == 0 or step == total_steps:
      _check_finite(pending)
      window.append(pending[1])
      pending = None
      elapsed = time.perf_counter() - window_start
      values = metrics_lib.average(jax.device_get(window))
      values.update(learning_rate=float(schedule(step - 1)),
                    images_per_sec=len(window) * config.data.batch_size / elapsed)
      writer.write(step, 'train', values)
      eta = (total_steps - step) * elapsed / len(window)
      logging.info(metrics_lib.progress_line(step, total_steps, values, eta))
      window, window_start = [], time.perf_counter()
    top1 = None
    if (config.eval_every_steps and step % config.eval_every_steps == 0) or step == total_steps:
      eval_metrics = evaluate(eval_step, state.params, config, mesh)
      top1 = eval_metrics['top1']
      writer.write(step, 'eval', eval_metrics)
      logging.info('eval at step %d: %s', step, eval_metrics)
      window_start = time.perf_counter()
    if step % config.checkpoint.every_steps == 0 or step == total_steps:
      if pending is not None:  # never save a state whose loss is not yet known to be finite
        _check_finite(pending)
      ckpts.save(step, state, top1)
  if pending is not None:
    _check_finite(pending)
  if step < total_steps:  # preempted: save where we are, and the same command resumes here
    ckpts.save(step, state, None, force=True)
    logging.warning('Preempted at step %d; checkpoint saved. Run the same command to resume.', step)
  return state, eval_metrics


def _check_finite(pending) -> None:
  step, values = pending
  loss = float(values['loss'])
  if not np.isfinite(loss):
    raise NonFiniteLossError(
        f'the training loss is {loss} at step {step}; the last good checkpoint is kept. Lower '
        f'--config.optimizer.learning_rate or add --config.optimizer.warmup_steps.')
