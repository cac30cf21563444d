"""train_and_evaluate resumed at steps that are not log points logs what a run never stopped logs."""
import json
import shutil
import time

import pytest

from alexnet_jax import checkpoint
from alexnet_jax import profiler
from alexnet_jax import train
from conftest import tiny_config


def _config():
  """12 steps, a log point every 4 and a checkpoint every 3: 6 and 9 fall inside log windows."""
  return tiny_config(total_steps=12, log_every_steps=4, **{'checkpoint.every_steps': 3,
                                                           'checkpoint.keep': 5})


def _times(workdir, after):
  with open(workdir / 'metrics.jsonl') as f:
    return [r['time'] for r in map(json.loads, f) if r['step'] > after]


def _train_points(workdir):
  with open(workdir / 'metrics.jsonl') as f:
    return {r['step']: [r['loss'], r['top1'], r['top5']] for r in map(json.loads, f)
            if r['split'] == 'train'}


def test_first_log_point_after_a_resume_averages_the_same_steps(tmp_path):
  reference, resumed = tmp_path / 'reference', tmp_path / 'resumed'
  train.train_and_evaluate(_config(), str(reference))
  want = _train_points(reference)
  assert sorted(want) == [4, 8, 12]
  # As if killed after step 8: the newest checkpoint is 6, in the middle of the window 5-8. The
  # resumed run drops the points after 6 and logs 8 and 12 again.
  shutil.copytree(reference, resumed)
  for step in (9, 12):
    shutil.rmtree(resumed / 'checkpoints' / str(step))
  started = time.time()
  train.train_and_evaluate(_config(), str(resumed))
  got = _train_points(resumed)
  assert got == want  # bit for bit: step 8 averages 5-6 (saved with checkpoint 6) and 7-8
  assert min(_times(resumed, after=6)) > started  # logged again, not left from the copy


class _RunFailed(Exception):
  pass


@pytest.mark.parametrize('run_fails', [False, True])
def test_a_failed_cleanup_skips_none_and_the_first_error_propagates(tmp_path, monkeypatch,
                                                                    run_fails):
  """The profiler's close fails: the checkpoints' close (the last save's wait) still runs."""
  def loop(run, state, *unused):
    if run_fails:
      raise _RunFailed('the run failed')
    return state, {}

  def profiler_close(self):
    raise OSError('the profile upload failed')

  closed = []
  real_close = checkpoint.Checkpoints.close
  monkeypatch.setattr(train, '_loop', loop)  # the cleanups are the subject, not the steps
  monkeypatch.setattr(profiler.Profiler, 'close', profiler_close)
  monkeypatch.setattr(checkpoint.Checkpoints, 'close',
                      lambda self: closed.append(True) or real_close(self))
  first_error = (_RunFailed, 'the run failed') if run_fails else (OSError, 'upload failed')
  with pytest.raises(first_error[0], match=first_error[1]):
    train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert closed == [True]
