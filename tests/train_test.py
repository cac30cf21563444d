"""train_and_evaluate resumed at steps that are not log points logs what a run never stopped logs."""
import json
import shutil

from alexnet_jax import checkpoint
from alexnet_jax import train
from configs import default


def _config():
  """12 steps, a log point every 4 and a checkpoint every 3: 6 and 9 fall inside log windows."""
  config = default.get_config()
  config.data.update(name='synthetic', image_size=64, batch_size=16)
  config.model.update(num_classes=16, fc_width=64)
  config.update(total_steps=12, log_every_steps=4, eval_every_steps=0)
  config.checkpoint.update(every_steps=3, keep=5)
  return config


def _train_points(workdir):
  with open(workdir / 'metrics.jsonl') as f:
    return {r['step']: [r['loss'], r['top1'], r['top5']] for r in map(json.loads, f)
            if r['split'] == 'train'}


def test_first_log_point_after_a_resume_averages_the_same_steps(tmp_path, monkeypatch):
  train.train_and_evaluate(_config(), str(tmp_path / 'reference'))
  want = _train_points(tmp_path / 'reference')
  assert sorted(want) == [4, 8, 12]

  workdir = tmp_path / 'resumed'
  with monkeypatch.context() as patch:  # preempted after step 7: saves 3, 6 and 7
    patch.setattr(checkpoint.Preemption, 'reached', lambda self, step: step == 7)
    train.train_and_evaluate(_config(), str(workdir))
  assert sorted(_train_points(workdir)) == [4]
  # As if killed after step 7 before its checkpoint was complete: the resume starts at 6 and its
  # first log point, 8, averages steps 5-8 (the saved ones, 5 and 6, and 7-8 run again).
  shutil.rmtree(workdir / 'checkpoints' / '7')
  train.train_and_evaluate(_config(), str(workdir))
  assert _train_points(workdir) == want  # bit for bit
