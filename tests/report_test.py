"""tools.report and runs: seeds pooled into mean +- std rows; unfinished, diverged, empty runs."""
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from alexnet_jax import runs
from alexnet_jax.tools import report
from conftest import error_line
from conftest import run_modules


def fake_run(workdir, *, seed=0, lrn=True, total=20, train=(), evals=(), config=True):
  """A workdir as train.py leaves it: config.json and metrics.jsonl rows (step, loss, top1)."""
  os.makedirs(workdir, exist_ok=True)
  if config:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      json.dump({'seed': seed, 'total_steps': total, 'model': {'lrn': lrn, 'fc_width': 64},
                 'data': {'name': 'synthetic'}}, f)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    for step, loss, top1 in train:
      f.write(json.dumps({'step': step, 'split': 'train', 'loss': loss, 'top1': top1,
                          'images_per_sec': 100.0 + step}) + '\n')
    for step, top1, top5 in evals:
      f.write(json.dumps({'step': step, 'split': 'eval', 'loss': 1.0, 'top1': top1,
                          'top5': top5, 'count': 10}) + '\n')


@pytest.fixture
def sweep(tmp_path):
  """2 points x 2 seeds, named as launch/sweep.py names them."""
  root = tmp_path / 'sweep'
  for seed in (0, 1):
    fake_run(root / f'seed={seed}', seed=seed, train=[(10, 2.0, 0.3), (20, 1.0 + seed, 0.8)],
             evals=[(10, 0.4, 0.8), (20, 0.5 + 0.2 * seed, 0.9)])
    fake_run(root / f'model.lrn=False,seed={seed}', seed=seed, lrn=False,
             train=[(10, 2.5, 0.2), (20, 1.5, 0.6 + 0.2 * seed)],
             evals=[(10, 0.3 + 0.1 * seed, 0.7), (20, 0.2, 0.6)])
  return root


def _png(path):
  image = np.asarray(Image.open(path).convert('RGB'))
  return image, len(np.unique(image.reshape(-1, 3), axis=0))


def test_seeds_share_a_row_with_mean_std_and_count(sweep, tmp_path):
  rows = report.write_report([str(sweep)], str(tmp_path / 'out'), train_error=0.25)
  by_name = {r['name']: r for r in rows}
  assert list(by_name) == ['baseline', 'model.lrn=False']  # the baseline (by name) first
  base, no_lrn = by_name['baseline'], by_name['model.lrn=False']
  assert base['seeds'] == 2 and base['changes'] == '' and no_lrn['changes'] == 'model.lrn=False'
  assert base['final_top1'] == (pytest.approx(0.6), pytest.approx(math.sqrt(0.02)), 2)
  assert base['best_top1'][0] == pytest.approx(0.6)
  assert no_lrn['best_top1'][0] == pytest.approx(0.35)
  assert base['final_train_loss'][:2] == (pytest.approx(1.5), pytest.approx(math.sqrt(0.5)))
  assert base['images_per_sec'][0] == 120.0  # the first window (compilation) left out
  assert base['steps_to_error'][0] == 20 and base['reached'] == 2  # top1 >= 0.75 first at 20
  assert no_lrn['steps_to_error'] == (20.0, 0.0, 1) and no_lrn['reached'] == 1
  text = (tmp_path / 'out' / 'report.md').read_text()
  assert '| baseline | (baseline) | 2 | 20 ± 0 |' in text
  assert '| 60.0 ± 14.1 |' in text  # final eval top-1 in %, sample std over the 2 seeds
  assert '| 20 (1 of 2) |' in text and 'All runs finished.' in text
  image, colours = _png(tmp_path / 'out' / 'curves.png')
  assert image.shape == (460, 1100, 3) and colours > 50
  for rgb in ((31, 119, 180), (255, 127, 14)):  # tab10 blue and orange: one line per row
    assert np.any(np.all(np.abs(image.astype(int) - rgb) < 8, axis=-1))


def test_diverged_unfinished_and_empty_runs_are_named(sweep, tmp_path):
  fake_run(sweep / 'model.lrn=False,seed=1', seed=1, lrn=False,
           train=[(10, 2.5, 0.2), (20, float('nan'), 0.1)])  # NaN loss, no eval
  fake_run(sweep / 'seed=2', seed=2, train=[(10, 2.0, 0.3)], evals=[(10, 0.9, 1.0)])  # at 10/20
  fake_run(sweep / 'model.fc=1', train=[])  # started, nothing logged yet
  with open(sweep / 'model.fc=1' / 'config.json') as f:
    config = json.load(f)
  config['model']['fc_width'] = 32
  with open(sweep / 'model.fc=1' / 'config.json', 'w') as f:
    json.dump(config, f)
  rows = {r['name']: r for r in report.write_report([str(sweep)], str(tmp_path))}
  assert rows['model.lrn=False']['status'] == 'seed 1 diverged'
  assert rows['model.lrn=False']['final_train_loss'] == (1.5, 0.0, 1)  # the finite seed only
  assert rows['baseline']['seeds'] == 3
  assert rows['baseline']['status'] == 'seed 2 unfinished (10/20)'
  assert rows['baseline']['final_top1'][2] == 3
  assert rows['model.fc=1']['status'] == 'seed 0 no metrics yet'
  assert rows['model.fc=1']['changes'] == 'model.fc_width=32'
  text = (tmp_path / 'report.md').read_text()
  assert 'Unfinished or failed: baseline, model.fc=1, model.lrn=False' in text
  assert '| model.fc=1 | model.fc_width=32 | 1 | 0 | - | - |' in text
  assert _png(tmp_path / 'curves.png')[1] > 50


def test_a_workdir_without_eval_rows_is_one_row_with_no_eval_numbers(tmp_path):
  fake_run(tmp_path / 'run', train=[(10, 2.0, 0.3), (20, 1.0, 0.5)])
  rows = report.write_report([str(tmp_path / 'run')], str(tmp_path / 'out'))
  assert len(rows) == 1 and rows[0]['final_top1'][2] == 0 and rows[0]['status'] == 'done'
  assert report.table(rows).splitlines()[-1] == (
      '| run | (baseline) | 1 | 20 | 1.000 | - | - | - | - | 120 | done |')
  assert _png(tmp_path / 'out' / 'curves.png')[1] > 50


def test_runs_are_found_at_any_depth_and_metrics_read_while_being_written(tmp_path):
  fake_run(tmp_path / 'a' / 'seed0' / 'baseline', train=[(10, 2.0, 0.3)])
  fake_run(tmp_path / 'a' / 'seed1' / 'baseline', seed=1, train=[(10, 3.0, 0.3)])
  with open(tmp_path / 'a' / 'seed1' / 'baseline' / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 20, "split": "tra')  # a line being written
  found = runs.find([str(tmp_path / 'a')])
  assert [r.path for r in found] == [str(tmp_path / 'a' / f'seed{s}' / 'baseline') for s in (0, 1)]
  assert [len(g.runs) for g in runs.group(found)] == [2]
  # The torn last line is dropped: seed 1 holds its one whole row, step 10.
  assert [row['step'] for row in found[1].train] == [10] and found[1].last_step == 10
  assert runs.without_seed('model.lrn=False,seed=3') == 'model.lrn=False'


def test_cli_prints_the_table_and_fails_in_one_line(sweep, tmp_path):
  os.makedirs(tmp_path / 'empty')
  result, no_folder, no_run = run_modules(
      ('alexnet_jax.tools.report', str(sweep), f'--output_dir={tmp_path / "o"}', '--json'),
      ('alexnet_jax.tools.report', tmp_path / 'none'),
      ('alexnet_jax.tools.report', tmp_path / 'empty'))
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r['name'] for r in rows] == ['baseline', 'model.lrn=False'] and rows[0]['seeds'] == 2
  assert (tmp_path / 'o' / 'report.md').exists() and (tmp_path / 'o' / 'curves.png').exists()
  assert 'no such folder' in error_line(no_folder)
  assert 'holds no run' in error_line(no_run)


def test_a_run_resumed_past_its_divergence_is_not_diverged(tmp_path):
  """train.py set checkpoint 10 aside (the loss of step 11 was NaN). 'finished': resumed from step 5
  at a lower learning rate, it finished. 'again': resumed, it diverged at step 11 again."""
  fake_run(tmp_path / 'finished', train=[(5, 2.0, 0.3), (10, 1.5, 0.4), (20, 1.0, 0.5)],
           evals=[(20, 0.5, 0.9)])
  fake_run(tmp_path / 'again', lrn=False, train=[(5, 2.0, 0.3), (10, 1.8, 0.4)])  # a row of its own
  for folder in ('finished/diverged_checkpoints/10', 'again/diverged_checkpoints/10',
                 'again/diverged_checkpoints/10_'):  # move_aside's name for a second 10
    os.makedirs(tmp_path / folder)
  finished, again = runs.read(str(tmp_path / 'finished')), runs.read(str(tmp_path / 'again'))
  assert finished.finished and not finished.diverged
  assert again.diverged
  rows = {r['name']: r for r in report.write_report([str(tmp_path)], str(tmp_path / 'out'))}
  assert rows['finished']['status'] == 'done' and rows['again']['status'] == 'seed 0 diverged'
