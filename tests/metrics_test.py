"""Metric averaging, eval sums, the progress line and the workdir writer."""
import json

from alexnet_jax import metrics


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
  assert list(tmp_path.glob('events.out.tfevents*'))


def test_writer_on_other_processes_writes_nothing(tmp_path):
  writer = metrics.Writer(str(tmp_path / 'w'), enabled=False)
  writer.write(1, 'train', {'loss': 1.0})
  assert not (tmp_path / 'w').exists()
