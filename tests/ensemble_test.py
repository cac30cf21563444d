"""Ensembles of runs (the paper's Table 2) in evaluate and inference, and checkpoint averaging."""
import json
import os
import shutil

import numpy as np
import pytest

import conftest
from alexnet_jax import checkpoint
from alexnet_jax import inference
from alexnet_jax import train
from alexnet_jax.tools import average
from alexnet_jax.tools import evaluate


@pytest.fixture(scope='module')
def sweep(trained_run, tmp_path_factory):
  """(photos, [workdirs]): two seeds of the tiny folder run; seed 0 is conftest's trained_run (the
  same config on the same photos), read only here as everywhere."""
  workdir, photos = trained_run
  other = str(tmp_path_factory.mktemp('sweep') / 'seed1')
  tfds_dir = os.path.join(os.path.dirname(photos), 'tfds')  # trained_run's, prepared already
  train.train_and_evaluate(conftest.tiny_folder_config(photos, tfds_dir, seed=1), other)
  return photos, [workdir, other]


def test_ensemble_is_the_mean_of_the_members_softmax_computed_by_hand(sweep, tmp_path):
  _, workdirs = sweep
  saved = str(tmp_path / 'members.npz')
  result = evaluate.evaluate_ensemble(workdirs, None, {'data.eval_crops': 10}, logits_path=saved)
  members = np.load(saved)
  logprobs, labels = members['logprobs'], members['labels']
  assert logprobs.shape == (2, 4, 4)  # 2 runs, the 4 held-out photos, 4 classes
  # Each member's metrics are those of evaluating it alone (the run's own eval path).
  for member, workdir in zip(result['members'], workdirs):
    alone, step = evaluate.evaluate(workdir, None, {'data.eval_crops': 10})
    assert member['step'] == step == 6 and member['count'] == alone['count'] == 4
    for key in ('loss', 'top1', 'top5'):
      assert member[key] == pytest.approx(alone[key], rel=1e-5, abs=1e-6)
  # The ensemble's, by hand: the mean of the two softmax outputs.
  probs = np.exp(logprobs.astype(np.float64)).mean(axis=0)
  top1 = float(np.mean(probs.argmax(axis=1) == labels))
  loss = float(-np.log(probs[np.arange(len(labels)), labels]).mean())
  assert result['ensemble']['top1'] == pytest.approx(top1)
  assert result['ensemble']['loss'] == pytest.approx(loss, rel=1e-6)
  # Not the mean of the members' metrics, nor any one member's.
  assert all(abs(m['loss'] - loss) > 1e-4 for m in result['members'])


def test_ensemble_through_the_cli_and_its_member_mismatch_error(sweep, tmp_path):
  photos, workdirs = sweep
  other = str(tmp_path / 'other')  # the same run, its classes renamed: another task's classes
  shutil.copytree(workdirs[1], other)
  with open(os.path.join(other, 'class_names.json')) as f:
    names = json.load(f)
  with open(os.path.join(other, 'class_names.json'), 'w') as f:
    json.dump(json.loads(json.dumps(names).replace('class', 'kind')), f)
  ok, mismatch = conftest.run_modules(
      ('alexnet_jax.tools.evaluate', *[f'--workdir={w}' for w in workdirs[:2]]),
      ('alexnet_jax.tools.evaluate', f'--workdir={workdirs[0]}', f'--workdir={other}'))
  assert ok.returncode == 0, ok.stderr[-3000:]
  line = json.loads(ok.stdout.splitlines()[-1])
  assert [m['workdir'] for m in line['members']] == workdirs[:2]
  assert line['ensemble']['count'] == 4
  assert 'must share their classes' in conftest.error_line(mismatch)
  del photos


def test_ties_go_to_the_lower_class_as_the_eval_steps_top_k():
  """A member whose log-probabilities are all equal (a dead network) ranks class 0 first."""
  labels = np.array([0, 1, 2, 3, 0, 5, 6, 7])
  metrics = evaluate.metrics_of(np.full((8, 8), -np.log(8.0), np.float32), labels)
  assert metrics['top1'] == 2 / 8 and metrics['top5'] == 5 / 8  # label 0 (twice); labels 0-4


def test_inference_load_of_several_runs_predicts_with_their_mean_probability(sweep):
  photos, workdirs = sweep
  image = os.path.join(photos, 'class1', '1.png')
  ensemble = inference.load(workdirs)
  singles = [inference.load(w) for w in workdirs]
  got = {p['label']: p['probability'] for p in ensemble.predict([image], top_k=4)[0]['predictions']}
  want = np.mean([[{p['label']: p['probability'] for p in s.predict([image], top_k=4)[0][
      'predictions']}[k] for k in range(4)] for s in singles], axis=0)
  np.testing.assert_allclose([got[k] for k in range(4)], want, rtol=1e-5)


def test_average_writes_a_run_of_the_mean_parameters_every_tool_reads(sweep, tmp_path):
  _, workdirs = sweep
  output = str(tmp_path / 'averaged')
  done = average.average(workdirs[0], [3, 6], output)
  assert done['steps'] == [3, 6]
  want = {s: checkpoint.load_params(workdirs[0], s)[0] for s in (3, 6)}
  got, step, config = checkpoint.load_params(output)
  assert step == 6 and config['model']['num_classes'] == 4
  np.testing.assert_allclose(got['fc8']['kernel'],
                             (want[3]['fc8']['kernel'] + want[6]['fc8']['kernel']) / 2, rtol=1e-6)
  metrics, _ = evaluate.evaluate(output, None, {})
  assert metrics['count'] == 4
  assert inference.load(output).class_names == inference.load(workdirs[0]).class_names
  again = conftest.run_modules(('alexnet_jax.tools.average', f'--workdir={workdirs[0]}',
                                f'--output_workdir={output}'))[0]
  assert 'exists and is not empty' in conftest.error_line(again)
