"""tools.predict and tools.evaluate as a user runs them: output formats, the eval row, one-line errors."""
import json
import os
import shutil

import numpy as np
import pytest

from alexnet_jax import inference
from alexnet_jax import workdir as workdir_lib
from alexnet_jax import train
from conftest import error_line
from conftest import run_module
from conftest import run_modules
from conftest import snapshot
from conftest import tiny_folder_config


def test_predict_json_is_one_object_per_image_best_first(trained_run, tmp_path):
  workdir, photos = trained_run
  result = run_module('alexnet_jax.tools.predict', f'--workdir={workdir}', '--json', '--top_k=3',
                      os.path.join(photos, 'class2'), os.path.join(photos, 'class0', '1.png'))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(line) for line in result.stdout.splitlines()]
  expected = inference.find_images([os.path.join(photos, 'class2')]) + [
      os.path.join(photos, 'class0', '1.png')]
  assert [l['path'] for l in lines] == expected  # every image once, folders walked, in order
  for line in lines:
    assert set(line) == {'path', 'predictions'}
    probabilities = [p['probability'] for p in line['predictions']]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert all(p['name'] == f'class{p["label"]}' for p in line['predictions'])
  assert '11 images in' in result.stderr and 'images/s' in result.stderr
  clf = inference.load(workdir)
  direct = clf.predict(expected, top_k=3)
  for line, want in zip(lines, direct):
    np.testing.assert_allclose([p['probability'] for p in line['predictions']],
                               [p['probability'] for p in want['predictions']], rtol=1e-5)


def test_predict_table_and_bad_inputs(trained_run, tmp_path):
  workdir, photos = trained_run
  image = os.path.join(photos, 'class1', '0.jpg')
  bad = tmp_path / 'notes.png'
  bad.write_text('not an image')
  table, not_skipped, step_5, no_workdir = run_modules(
      ('alexnet_jax.tools.predict', f'--workdir={workdir}', '--top_k=2', '--skip_bad', image, bad),
      ('alexnet_jax.tools.predict', f'--workdir={workdir}', image, bad),
      ('alexnet_jax.tools.predict', f'--workdir={workdir}', '--step=5', image),
      ('alexnet_jax.tools.predict', f'--workdir={tmp_path / "nothing"}', image))
  assert table.returncode == 0, table.stderr[-3000:]
  assert table.stdout.splitlines()[0] == image and '%  class' in table.stdout.splitlines()[1]
  assert f'warning: {bad} is not a readable image; skipped.' in table.stderr
  assert 'notes.png is not a readable image; remove it or pass --skip_bad' in error_line(
      not_skipped)
  assert 'no checkpoint of step 5; it has steps [3, 6]' in error_line(step_5)
  assert 'no such workdir' in error_line(no_workdir)


def test_top_k_below_1_is_refused_in_one_line_not_k_minus_1_classes(trained_run):
  workdir, photos = trained_run
  image = os.path.join(photos, 'class1', '0.jpg')
  for top_k in (0, -1):
    with pytest.raises(ValueError, match=f'top_k={top_k}: ask for 1 or more'):
      inference.load(workdir).predict([image], top_k=top_k)
  line = error_line(run_module('alexnet_jax.tools.predict', f'--workdir={workdir}', '--top_k=-1',
                               image))
  assert line == ('error: flag --top_k=-1: give 1 or more classes per image (--top_k=1: the best '
                  'one only).')


def test_evaluate_gives_the_runs_last_eval_row_and_logs_overrides(trained_run, tmp_path):
  """On a copy of the session's run: evaluate appends to the run's evaluations.jsonl, and no other
  test may see those rows (their results would depend on the order the tests ran in)."""
  shared = snapshot(trained_run[0])
  workdir = str(tmp_path / 'run')
  shutil.copytree(trained_run[0], workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    last = [r for r in map(json.loads, f) if r['split'] == 'eval'][-1]
  os.makedirs(tmp_path / 'empty')
  result, typo, empty = run_modules(  # the two that fail write nothing
      ('alexnet_jax.tools.evaluate', f'--workdir={workdir}'),
      ('alexnet_jax.tools.evaluate', f'--workdir={workdir}', '--config.data.eval_crop=10'),
      ('alexnet_jax.tools.evaluate', f'--workdir={tmp_path / "empty"}'))
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads(result.stdout.splitlines()[-1])
  assert metrics == {k: last[k] for k in ('count', 'loss', 'top1', 'top5')}  # exactly
  assert 'evaluating step 6: batch 1/1' in result.stderr
  ten = run_module('alexnet_jax.tools.evaluate', f'--workdir={workdir}', '--step=3',
                   '--config.data.eval_crops=10')
  assert ten.returncode == 0, ten.stderr[-3000:]
  with open(os.path.join(workdir, 'evaluations.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 2  # this test's two evaluations, and nothing another test wrote
  assert rows[0]['step'] == 6 and rows[0]['overrides'] == [] and rows[0]['top1'] == last['top1']
  assert rows[1]['step'] == 3 and rows[1]['overrides'] == ['--config.data.eval_crops=10']
  assert rows[1]['count'] == last['count']
  assert json.loads(ten.stdout.splitlines()[-1]) == {k: rows[1][k] for k in metrics}
  assert 'Did you mean "eval_crops"' in error_line(typo)
  assert 'has no config.json' in error_line(empty)
  assert snapshot(trained_run[0]) == shared


def test_evaluate_of_an_older_step_uses_the_config_saved_with_it(trained_run, tmp_path):
  """A resume to step 9 changed model.activation (shape-neutral): step 6 still evaluates as relu."""
  workdir, photos = trained_run
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(workdir, resumed)  # a copy: the session's run stays as it is
  train.train_and_evaluate(tiny_folder_config(
      photos, os.path.join(os.path.dirname(workdir), 'tfds'),
      **{'total_steps': 9, 'model.activation': 'tanh'}), resumed)
  assert workdir_lib.read_config(os.path.join(resumed, 'config.json')).model.activation == 'tanh'
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    at_6 = [r for r in map(json.loads, f) if r['split'] == 'eval' and r['step'] == 6][0]
  result = run_module('alexnet_jax.tools.evaluate', f'--workdir={resumed}', '--step=6')
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads(result.stdout.splitlines()[-1])
  assert metrics == {k: at_6[k] for k in ('count', 'loss', 'top1', 'top5')}  # exactly
