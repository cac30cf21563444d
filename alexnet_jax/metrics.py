"""Metrics: averaging, the workdir's metrics.jsonl and TensorBoard events, the progress line.

On a gs:// workdir the events are written to a local folder and their new bytes uploaded after each
write: TF's own GCS layer does not read STORAGE_EMULATOR_HOST (nor epath's credentials). There each
log point sends only its own line and events (paths.Appender: GCS has no append), so a 90-epoch run
sends as much per point at its end as at its start. The events are written without TensorFlow
(tensorboard's own record writer and protos), so training on synthetic data never imports it.
"""
import io
import json
import math
import os
import shutil
import socket
import tempfile
import time

import numpy as np
from absl import logging

from alexnet_jax import errors
from alexnet_jax import parallel
from alexnet_jax import paths
from alexnet_jax import workdir as workdir_lib

LOG = 'metrics.jsonl'  # one JSON object per line, appended; a kill leaves at most the last one torn


class LogError(errors.Error, ValueError):
  """A damaged line before the last one of metrics.jsonl."""


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


def _read(path: str):
  """(the lines to keep, the torn last line's number or None); a damaged earlier line: LogError."""
  if not paths.exists(path):
    return [], None
  numbered = [(n, line) for n, line in enumerate(paths.read_bytes(path).split(b'\n'), 1)
              if line.strip()]
  for n, line in numbered:
    try:
      if not isinstance(json.loads(line).get('step'), int):
        raise ValueError('no integer step')
    except (ValueError, AttributeError) as e:
      if n == numbered[-1][0]:  # a run killed while it wrote this line
        return [line for _, line in numbered[:-1]], n
      raise LogError(f'{path} line {n} is damaged ({type(e).__name__}: {str(e)[:80]}); only a last '
                     'line is dropped. Fix or delete that line, then run the same command.') from e
  return [line for _, line in numbered], None


def check_log(workdir: str, *, enabled: bool = True) -> None:
  """Raises LogError, before anything is written, if metrics.jsonl is damaged before its last line."""
  error = None
  if enabled:
    try:
      _read(os.path.join(workdir, LOG))
    except LogError as e:
      error = e
  if not parallel.everywhere(error is None):
    raise error or LogError(f'{os.path.join(workdir, LOG)} is damaged (see process 0).')


class EventsFile:
  """A TensorBoard events file, summaries in the form TF2's tf.summary writes (tensors with the
  'scalars' or 'images' plugin), through tensorboard's record writer: no TensorFlow import."""

  def __init__(self, folder: str):
    # pylint: disable=g-import-not-at-top
    import tensorboard.compat.proto.event_pb2
    import tensorboard.compat.proto.summary_pb2
    import tensorboard.compat.proto.tensor_pb2
    import tensorboard.compat.proto.tensor_shape_pb2
    import tensorboard.compat.proto.types_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    self._pb = tensorboard.compat.proto  # imported at the first writer, not with this module
    self.name = f'events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}.0.v2'
    self._records = RecordWriter(open(os.path.join(folder, self.name), 'wb'))  # pylint: disable=consider-using-with
    self._write(self._pb.event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  def _write(self, event) -> None:
    self._records.write(event.SerializeToString())

  def _summary(self, step: int, tag: str, plugin: str, tensor) -> None:
    summary = self._pb.summary_pb2
    metadata = summary.SummaryMetadata(
        plugin_data=summary.SummaryMetadata.PluginData(plugin_name=plugin))
    self._write(self._pb.event_pb2.Event(wall_time=time.time(), step=int(step),
                                         summary=summary.Summary(value=[summary.Summary.Value(
                                             tag=tag, metadata=metadata, tensor=tensor)])))

  def scalar(self, step: int, tag: str, value: float) -> None:
    self._summary(step, tag, 'scalars', self._pb.tensor_pb2.TensorProto(
        dtype=self._pb.types_pb2.DT_FLOAT, float_val=[float(value)]))

  def image(self, step: int, tag: str, image_HWC) -> None:
    """A uint8 [H, W, C] image: a string tensor [width, height, PNG] as tf.summary.image's."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    image_HWC = np.asarray(image_HWC, np.uint8)
    png = io.BytesIO()
    Image.fromarray(image_HWC[..., 0] if image_HWC.shape[-1] == 1 else image_HWC).save(png, 'PNG')
    shape_pb2 = self._pb.tensor_shape_pb2
    shape = shape_pb2.TensorShapeProto(dim=[shape_pb2.TensorShapeProto.Dim(size=3)])
    self._summary(step, tag, 'images', self._pb.tensor_pb2.TensorProto(
        dtype=self._pb.types_pb2.DT_STRING, tensor_shape=shape,
        string_val=[str(image_HWC.shape[1]).encode(), str(image_HWC.shape[0]).encode(),
                    png.getvalue()]))

  def flush(self) -> None:
    self._records.flush()

  def close(self) -> None:
    self._records.close()


class Writer:
  """Appends to WORKDIR/metrics.jsonl and TensorBoard; inert on processes other than 0."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self._summary, self._workdir, self._events = None, workdir, None
    if enabled:
      paths.makedirs(workdir)
      self._path = os.path.join(workdir, LOG)
      if paths.is_remote(workdir):
        self._events = tempfile.mkdtemp(prefix='alexnet_jax_events_')
      self._summary = EventsFile(self._events or workdir)
      if self._events is not None:  # the log and the events file, appended without a rewrite
        self._log = paths.Appender(self._path)
        self._events_log = paths.Appender(os.path.join(workdir, self._summary.name))
        self._events_sent = 0  # bytes of the local events file appended there

  def truncate_after(self, step: int) -> None:
    """Drops points logged after `step` (by a run that died before its next checkpoint)."""
    if not self.enabled or not paths.exists(self._path):
      return
    lines, torn = _read(self._path)
    if torn:
      logging.warning('%s: dropped its torn last line (%d), left by a run killed while writing it.',
                      self._path, torn)
    kept = [line + b'\n' for line in lines if json.loads(line)['step'] <= step]
    if torn or len(kept) < len(lines):  # else as it is: on GCS a rewrite sends the whole log
      workdir_lib.write_atomic(self._path, b''.join(kept))

  def sync(self) -> None:
    """Puts the lines written so far on the disk (before a checkpoint that follows them)."""
    if self.enabled:
      workdir_lib.sync(self._path)

  def write(self, step: int, split: str, values: dict) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'split': split, 'time': round(time.time(), 3), **values}
    if self._events is None:
      workdir_lib.append_line(self._path, json.dumps(record))
    else:
      with workdir_lib.writing(self._path):
        self._log.append((json.dumps(record) + '\n').encode())
    for name, value in values.items():
      self._summary.scalar(step, f'{split}/{name}', value)
    self._summary.flush()
    self._upload()
    logging.log_first_n(logging.INFO, 'metrics -> %s', 1, self._path)

  def image(self, step: int, name: str, image_HWC) -> None:
    """A uint8 image [H, W, C] to TensorBoard (conv1's filters: watch them form)."""
    if self.enabled:
      self._summary.image(step, name, image_HWC)
      self._summary.flush()
      self._upload()

  def _upload(self) -> None:
    """Appends the events written since the last upload to a gs:// workdir's events file."""
    if self._events is not None:
      with open(os.path.join(self._events, self._summary.name), 'rb') as f:
        f.seek(self._events_sent)
        new = f.read()
      if new:
        with workdir_lib.writing(self._events_log.path):
          self._events_log.append(new)
        self._events_sent += len(new)

  def close(self) -> None:
    if self._summary is not None:
      self._summary.close()
      self._upload()
      if self._events is not None:
        with workdir_lib.writing(self._workdir):
          self._log.close()
          self._events_log.close()
        shutil.rmtree(self._events, ignore_errors=True)
