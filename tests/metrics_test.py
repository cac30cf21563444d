"""Metric averaging, eval sums, the progress line, the workdir writer and its damaged logs."""
import errno
import json
import os
import shutil

import pytest

from alexnet_jax import metrics
from alexnet_jax import workdir


def test_eval_sums_become_means_over_real_examples():
  got = metrics.from_sums({'loss': 6.0, 'top1': 3.0, 'top5': 4.0, 'count': 4.0})
  assert got == {'loss': 1.5, 'top1': 0.75, 'top5': 1.0, 'count': 4}


def test_progress_line_has_step_loss_accuracy_rate_and_eta():
  line = metrics.progress_line(150, 300, {'loss': 0.5, 'top1': 0.875, 'learning_rate': 0.005,
                                          'images_per_sec': 412.25}, eta_seconds=3725)
  assert line == 'step 150/300 | loss 0.5000 | top1 0.8750 | lr 0.005 | 412.2 img/s | ETA 1:02:05'


def test_writer_appends_jsonl_and_drops_points_after_a_resumed_step(tmp_path):
  writer = metrics.Writer(str(tmp_path))
  for step in (10, 20, 30):
    writer.write(step, 'train', {'loss': 1.0 / step})
  writer.truncate_after(20)
  writer.write(30, 'eval', {'top1': 0.5})
  writer.close()
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['step'], r['split']) for r in records] == [(10, 'train'), (20, 'train'), (30, 'eval')]
  assert records[0]['loss'] == 0.1
  # The events, written without TensorFlow, read back through TensorFlow as tf.summary's would.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  [events] = tmp_path.glob('events.out.tfevents*')
  scalars = [(e.step, v.tag, float(tf.make_ndarray(v.tensor)), v.metadata.plugin_data.plugin_name)
             for e in tf.compat.v1.train.summary_iterator(str(events)) for v in e.summary.value]
  assert scalars == [(10, 'train/loss', pytest.approx(0.1), 'scalars'),
                     (20, 'train/loss', pytest.approx(0.05), 'scalars'),
                     (30, 'train/loss', pytest.approx(1 / 30), 'scalars'),
                     (30, 'eval/top1', 0.5, 'scalars')]


def test_writer_on_other_processes_writes_nothing(tmp_path):
  writer = metrics.Writer(str(tmp_path / 'w'), enabled=False)
  writer.write(1, 'train', {'loss': 1.0})
  assert not (tmp_path / 'w').exists()


def _log(tmp_path, text: bytes):
  (tmp_path / 'metrics.jsonl').write_bytes(text)
  return metrics.Writer(str(tmp_path))


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
  whole = b'{"step": 1, "split": "train", "loss": 2.5}\n{"step": 2, "split": "train", "loss": 2.25}\n'
  for torn in (b'{"step": 3, "split": "tr', b'{"step": 3, "split": "train", "loss": 2.', b'\0\0\0'):
    writer = _log(tmp_path, whole + torn)
    writer.truncate_after(5)
    writer.write(3, 'train', {'loss': 2.0})
    writer.close()
    steps = [json.loads(l)['step'] for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3], torn
    assert 'dropped its torn last line (3)' in caplog.text
    caplog.clear()


def test_a_damaged_line_before_the_last_is_an_error_naming_it_and_changes_nothing(tmp_path):
  text = b'{"step": 1, "split": "train"}\n{"step": 2, "spl\n{"step": 3, "split": "train"}\n'
  (tmp_path / 'metrics.jsonl').write_bytes(text)
  with pytest.raises(metrics.LogError, match=r'metrics.jsonl line 2 is damaged \(JSONDecodeError'):
    metrics.check_log(str(tmp_path))
  assert (tmp_path / 'metrics.jsonl').read_bytes() == text


def test_a_failed_append_names_the_file_and_the_os_error(tmp_path, monkeypatch):
  writer = metrics.Writer(str(tmp_path))
  writer.write(1, 'train', {'loss': 1.0})
  real = os.write

  def full_disk(fd, data):  # ENOSPC, injected into the one write of a line
    if os.readlink(f'/proc/self/fd/{fd}').endswith('metrics.jsonl'):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(fd, data)
  monkeypatch.setattr(os, 'write', full_disk)
  with pytest.raises(workdir.WriteError) as error:
    writer.write(2, 'train', {'loss': 0.5})
  monkeypatch.undo()
  assert str(error.value).startswith(
      f'could not write {tmp_path}/metrics.jsonl: No space left on device (ENOSPC).')
  shutil.rmtree(tmp_path)  # a vanished workdir: a real ENOENT
  with pytest.raises(workdir.WriteError, match='metrics.jsonl: No such file or directory'):
    writer.write(3, 'train', {'loss': 0.25})
  writer.close()
