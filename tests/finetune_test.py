"""The 'classify your own photos' flow as README gives it: import -> fine-tune -> predict."""
import json
import os

import jax
import numpy as np

from alexnet_jax import checkpoint
from alexnet_jax import inference
from conftest import error_line
from conftest import run_module
from conftest import write_photos


# 2 devices, not conftest's 8 (the last flag counts): the batch still split, fewer programs.
DEVICES = {'XLA_FLAGS': os.environ['XLA_FLAGS'] + ' --xla_force_host_platform_device_count=2'}


def _finetune_flags(workdir, pretrained, photos, tfds_dir, **overrides):
  values = {'init_from': pretrained, 'data.name': f'folder:{photos}', 'data.data_dir': tfds_dir,
            'data.train_split': 'train[:75%]', 'data.eval_split': 'train[75%:]',
            'data.image_size': 64, 'data.batch_size': 8, 'model.fc_width': 64,
            'total_steps': 6, 'log_every_steps': 2, 'eval_every_steps': 3,
            'checkpoint.every_steps': 3, **overrides}
  return ['--config=configs/finetune.py', f'--workdir={workdir}'] + [
      f'--config.{k}={v}' for k, v in values.items()]


def test_import_finetune_the_classifier_then_predict_new_photos(imported_torchvision, tmp_path):
  pretrained = imported_torchvision[2]  # tools.import_torchvision's workdir (conftest)
  photos = write_photos(str(tmp_path / 'photos'), classes=2, per_class=16, size=(80, 96))
  run = str(tmp_path / 'cats_dogs')
  flags = _finetune_flags(run, pretrained, photos, tmp_path / 'tfds')
  result = run_module('alexnet_jax.main', *flags, env=DEVICES)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 're-initialised fc8' in result.stderr

  before, _, _ = checkpoint.load_params(pretrained)
  after, step, _ = checkpoint.load_params(run)
  assert step == 6
  for layer in ('conv1', 'conv2', 'conv3', 'conv4', 'conv5'):  # frozen: not even weight decay
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[layer]),
                                                    jax.tree.leaves(after[layer]))), layer
  for layer in ('fc6', 'fc7'):
    assert not np.array_equal(before[layer]['kernel'], after[layer]['kernel']), layer
  assert after['fc8']['kernel'].shape == (64, 2)

  new_photos = write_photos(str(tmp_path / 'new'), classes=2, per_class=2, seed=1, size=(80, 96))
  result = run_module('alexnet_jax.tools.predict', f'--workdir={run}', '--json', new_photos,
                      env=DEVICES)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(line) for line in result.stdout.splitlines()]
  assert len(lines) == 4
  assert all({p['name'] for p in line['predictions']} == {'class0', 'class1'} for line in lines)
  assert inference.load(run).class_ids == ['class0', 'class1']


def test_a_class_count_that_does_not_fit_the_data_stops_before_writing(tmp_path):
  photos = write_photos(str(tmp_path / 'photos'), classes=2, per_class=4)
  run = tmp_path / 'run'
  line = error_line(run_module('alexnet_jax.main', *_finetune_flags(
      run, str(tmp_path / 'pretrained'), photos, tmp_path / 'tfds', **{'model.num_classes': 3})))
  assert 'the dataset has 2 classes but model.num_classes=3' in line
  assert not run.exists()
