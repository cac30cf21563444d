"""Sweeps: every key of every configs/sweeps file is a config key of its type; launch/sweep.py."""
import glob
import importlib.util
import os
import subprocess
import sys

import pytest

from configs import default
from conftest import REPO

SWEEPS = sorted(glob.glob(os.path.join(REPO, 'configs', 'sweeps', '*.py')))
_spec = importlib.util.spec_from_file_location('sweep_runner',
                                               os.path.join(REPO, 'launch', 'sweep.py'))
sweep_runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_runner)


def test_the_ablation_sweep_is_a_baseline_and_one_paper_change_per_point():
  path = os.path.join(REPO, 'configs', 'sweeps', 'ablations.py')
  sweep = sweep_runner.load_sweep(path)
  assert sweep[0] == {} and all(len(point) == 1 for point in sweep[1:])
  changed = {key: value for point in sweep[1:] for key, value in point.items()}
  config = default.get_config()
  for key, value in changed.items():  # each point moves its knob away from the baseline
    assert config[key.removeprefix('config.')] != value, key
  assert set(changed) >= {'config.model.lrn', 'config.model.overlap_pool', 'config.model.groups',
                          'config.model.dropout_rate', 'config.model.activation',
                          'config.data.pca_lighting_std'}


@pytest.mark.parametrize('path', SWEEPS, ids=os.path.basename)
def test_every_sweep_key_exists_in_the_default_config(path):
  config = default.get_config()
  config.lock()
  sweep = sweep_runner.load_sweep(path)
  assert sweep and all(isinstance(point, dict) for point in sweep)
  for point in sweep:
    sweep_runner.check_point(config, point)  # raises on an unknown key or a wrong type
  names = [sweep_runner.point_name(point) for point in sweep]
  assert len(set(names)) == len(names), 'two points would share a workdir'


@pytest.mark.parametrize('point', [{'config.model.lrnn': False}, {'config.model.lrn': 'abc'},
                                   {'model.lrn': False}])
def test_check_point_rejects_bad_points(point):
  config = default.get_config()
  config.lock()
  with pytest.raises((AttributeError, KeyError, TypeError)):
    sweep_runner.check_point(config, point)


def test_dry_run_prints_one_command_per_point(tmp_path):
  sweep_file = os.path.join(REPO, 'configs', 'sweeps', 'ablations.py')
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', 'sweep.py'), '--config=configs/default.py',
       f'--sweep={sweep_file}', f'--workdir_root={tmp_path}', '--dry_run',
       '--config.total_steps=7', '--', '--num_processes=1'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
  lines = result.stdout.splitlines()
  sweep = sweep_runner.load_sweep(sweep_file)
  assert len(lines) == len(sweep)
  for line, point in zip(lines, sweep):
    assert '-m alexnet_jax.main --config=configs/default.py' in line
    assert f'--workdir={tmp_path}/{sweep_runner.point_name(point)}' in line
    args = line.split()
    shared = len(args) - len(point) - 2  # shared flags, then the point's own (which win)
    assert args[shared:shared + 2] == ['--config.total_steps=7', '--num_processes=1']
    for key, value in point.items():
      assert f'--{key}={value}' in line
  assert not os.listdir(tmp_path)  # nothing ran
