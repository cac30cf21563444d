"""Metrics: averaging, the workdir's metrics.jsonl and TensorBoard events, the progress line."""
import json
import math
import os
import time

import numpy as np
from absl import logging


def average(step_metrics: list[dict]) -> dict:
  """Mean of per-step scalar metrics (already fetched to the host)."""
  return {k: float(np.mean([m[k] for m in step_metrics])) for k in step_metrics[0]}


def from_sums(sums: dict) -> dict:
  """Eval sums (loss, top1, top5, count) -> means; count stays a count."""
  count = max(float(sums['count']), 1.0)
  return {k: (float(v) / count if k != 'count' else int(v)) for k, v in sums.items()}


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def progress_line(step: int, total: int, values: dict, eta_seconds: float) -> str:
  width = len(str(total))
  return (f'step {step:>{width}}/{total} | loss {values["loss"]:.4f} | top1 {values["top1"]:.4f} '
          f'| lr {values["learning_rate"]:.3g} | {values["images_per_sec"]:.1f} img/s '
          f'| ETA {format_duration(eta_seconds)}')


class Writer:
  """Appends to WORKDIR/metrics.jsonl and TensorBoard; inert on processes other than 0."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self._summary = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self._path = os.path.join(workdir, 'metrics.jsonl')
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tf = tf
      self._summary = tf.summary.create_file_writer(workdir)

  def truncate_after(self, step: int) -> None:
    """Drops points logged after `step` (by a run that died before its next checkpoint)."""
    if not self.enabled or not os.path.exists(self._path):
      return
    with open(self._path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
    with open(self._path + '.tmp', 'w') as f:
      f.writelines(kept)
    os.replace(self._path + '.tmp', self._path)

  def write(self, step: int, split: str, values: dict) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'split': split, 'time': round(time.time(), 3), **values}
    with open(self._path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    with self._summary.as_default(step=int(step)):
      for name, value in values.items():
        self._tf.summary.scalar(f'{split}/{name}', value)
    self._summary.flush()
    logging.log_first_n(logging.INFO, 'metrics -> %s', 1, self._path)

  def close(self) -> None:
    if self._summary is not None:
      self._summary.close()
