"""Faults a real run meets: any file of a checkpoint damaged in any way, a torn metrics line, a save
that fails. The lock is in workdir_test.py, failed metrics writes in metrics_test.py, the kill -9
soak in resume_test.py.

Every case starts from one shared run, hard-linked per case: damage replaces a file, never edits it.
"""
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from alexnet_jax import checkpoint
from alexnet_jax import input_pipeline
from alexnet_jax import manifest
from alexnet_jax import model as model_lib
from alexnet_jax import optim
from alexnet_jax import parallel
from alexnet_jax import train
from alexnet_jax import train_step as step_lib
from conftest import REPO
from conftest import abstract_state
from conftest import checkpoint_config
from conftest import cli_environ
from conftest import metrics_records
from conftest import snapshot
from conftest import tiny_flags

WALL_CLOCK = ('time', 'images_per_sec')  # the only fields a resumed run may log differently
POSITIONS = {'newest': (3, 2), 'older': (2, 3)}  # the damaged step, the step the run resumes from


def _replace(path, data: bytes) -> None:
  os.remove(path)  # a new file: the hard-linked original in the shared run stays as it was
  with open(path, 'wb') as f:
    f.write(data)


DAMAGE = {  # kind -> (damage(path, data), what the warning says about the file)
    'emptied': (lambda p, d: _replace(p, b''), lambda name, size: f'{name} is empty'),
    'truncated': (lambda p, d: _replace(p, d[:len(d) // 2]),
                  lambda name, size: f'{name} is {size // 2} bytes, {size} bytes when saved'),
    'garbage': (lambda p, d: _replace(p, np.random.default_rng(len(d)).bytes(len(d))),
                lambda name, size: f'{name} has other bytes than when saved'),
    'deleted': (lambda p, d: os.remove(p), lambda name, size: f'{name} is missing'),
}


def without_wall_clock(rows):
  return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


def link_copy(workdir, target) -> str:
  shutil.copytree(workdir, target, copy_function=os.link)
  return str(target)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A 4-step run saved at every step, its step 4 removed: checkpoints 2 and 3, and the metrics of
  steps 1-4 of a run never interrupted, which every resumed run must log again."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = checkpoint_config(**{'total_steps': 4, 'checkpoint.every_steps': 1})
  train.train_and_evaluate(config, workdir)
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '4'))
  yield config, workdir, metrics_records(workdir)
  for step in (2, 3):  # no case changed the shared files
    assert manifest.damage(os.path.join(workdir, 'checkpoints', str(step))) is None


@pytest.fixture(scope='module')
def steps_after(run):
  """state -> {step: (loss, top1, top5)} of the steps after state.step, as train_and_evaluate
  computes them (the same schedule, batches and step), compiled once for the module."""
  config = run[0]
  info = input_pipeline.get_dataset_info(config.data, num_classes=config.model.num_classes)
  per_epoch, total = train._schedule_steps(config, info)  # pylint: disable=protected-access
  tx = optim.make_optimizer(config.optimizer, optim.make_schedule(
      config.optimizer, steps_per_epoch=per_epoch, total_steps=total))
  mesh = parallel.make_mesh(config.mesh)
  specs = step_lib.state_specs(abstract_state(config))
  step_fn = step_lib.make_train_step(model_lib.AlexNet(**config.model), tx, mesh, specs,
                                     seed=config.seed, label_smoothing=config.label_smoothing)

  def run_from(state):
    batches = input_pipeline.create_train_iterator(
        config.data, seed=config.seed, num_classes=config.model.num_classes,
        start_step=int(state.step))
    logged = {}
    for step in range(int(state.step) + 1, total + 1):
      state, metrics = step_fn(state, parallel.global_batch(mesh, next(batches)))
      logged[step] = tuple(float(metrics[k]) for k in ('loss', 'top1', 'top5'))
    return logged
  return run_from


def _said(name, kind, size) -> str:
  """What the warning must say of the file."""
  if name == manifest.NAME:
    return f'{name} is missing' if kind == 'deleted' else f'{name} is damaged'
  return DAMAGE[kind][1](name, size) if (kind, size // 2) != ('truncated', 0) else f'{name} is empty'


def _resumes_bit_equal(run, steps_after, copy, damaged, resumed, said, caplog) -> str:
  """'' if the run warns, sets the damaged step aside and logs the uninterrupted numbers from
  `resumed` on; else what went wrong."""
  config, _, reference = run
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    ckpts = checkpoint.Checkpoints(copy, config)
    state = ckpts.restore_latest(abstract_state(config))
    ckpts.close()
  warning = f'checkpoints/{damaged} is corrupt: {said}'
  if not any(warning in r.getMessage() for r in caplog.records):
    return f'no warning "{warning}" in {[r.getMessage() for r in caplog.records]}'
  if not os.path.isdir(os.path.join(copy, checkpoint.CORRUPT_DIR, str(damaged))):
    return 'not set aside'
  if state is None or int(state.step) != resumed:
    return f'resumed from {None if state is None else int(state.step)}, not {resumed}'
  want = {r['step']: tuple(r[k] for k in ('loss', 'top1', 'top5')) for r in reference
          if r['split'] == 'train' and r['step'] > resumed}
  got = steps_after(state)
  return '' if got == want else f'later metrics {got} differ from the uninterrupted {want}'


# The file each cell takes through a whole resume (ALEXNET_SOAK=1: every file); '*' is the largest.
THROUGH_RESUME = {('emptied', 'newest'): '_CHECKPOINT_METADATA', ('emptied', 'older'): '*',
                  ('truncated', 'newest'): '*', ('truncated', 'older'): 'meta/metadata',
                  ('garbage', 'newest'): 'metrics/metrics', ('garbage', 'older'): manifest.NAME,
                  ('deleted', 'newest'): 'commit_success.txt', ('deleted', 'older'): 'state/_sharding'}


@pytest.mark.parametrize('position', sorted(POSITIONS))
@pytest.mark.parametrize('kind', sorted(DAMAGE))
def test_any_damaged_file_of_a_step_sets_it_aside_and_the_run_resumes_bit_equal(
    run, steps_after, tmp_path, caplog, kind, position):
  """Every file of the step (Orbax's, its metrics, the project's meta and file list) is damaged in
  turn and found; one file per cell (every file with ALEXNET_SOAK=1) goes through a whole resume.
  A resume treats every damage found alike: set aside before Orbax opens the step."""
  workdir = run[1]
  damaged, resumed = POSITIONS[position]
  step_dir = os.path.join(workdir, 'checkpoints', str(damaged))
  names = sorted(os.path.relpath(os.path.join(d, f), step_dir)
                 for d, _, files in os.walk(step_dir) for f in files)
  assert {'_CHECKPOINT_METADATA', 'commit_success.txt', 'metrics/metrics', 'meta/metadata',
          'state/_sharding', manifest.NAME} <= set(names) and len(names) > 12, names
  largest = max(names, key=lambda n: os.path.getsize(os.path.join(step_dir, n)))
  through = THROUGH_RESUME[kind, position].replace('*', largest)
  failures = []
  for i, name in enumerate(names):
    copy = link_copy(workdir, tmp_path / str(i))
    copy_step = os.path.join(copy, 'checkpoints', str(damaged))
    path = os.path.join(copy_step, name)
    with open(path, 'rb') as f:
      data = f.read()
    DAMAGE[kind][0](path, data)
    said = _said(name, kind, len(data))
    found = manifest.damage(copy_step)  # what restore_latest screens each step with
    if found is None or not found.startswith(said):
      failures.append(f'{name} {kind}: found {found!r}, not {said!r}')
    elif name == through or os.environ.get('ALEXNET_SOAK') == '1':
      if why := _resumes_bit_equal(run, steps_after, copy, damaged, resumed, said, caplog):
        failures.append(f'{name} {kind}: {why}')
    shutil.rmtree(copy)
  assert not failures, '\n'.join(failures)


def test_no_good_checkpoint_stops_in_one_line_and_moves_nothing(run, tmp_path):
  config, workdir, _ = run
  copy = link_copy(workdir, tmp_path / 'w')
  _replace(os.path.join(copy, 'checkpoints', '3', '_CHECKPOINT_METADATA'), b'')
  os.remove(os.path.join(copy, 'checkpoints', '2', manifest.NAME))
  before = snapshot(copy)
  with pytest.raises(checkpoint.CheckpointError) as error:  # main.py prints it as `error: ...`
    train.train_and_evaluate(config, copy)
  message = str(error.value)
  assert '\n' not in message and 'nothing was moved' in message, message
  assert 'step 2: files.json is missing' in message and 'step 3: _CHECKPOINT_METADATA is empty' in message
  assert snapshot(copy) == before


def test_damaged_newest_step_and_torn_metrics_line_resume_to_the_uninterrupted_log(
    run, tmp_path, caplog):
  """The issue's two stops, with keep=1: the good step 2 is used, not deleted for the damaged 3."""
  config, workdir, reference = run
  copy = link_copy(workdir, tmp_path / 'w')
  _replace(os.path.join(copy, 'checkpoints', '3', '_CHECKPOINT_METADATA'), b'')
  log = os.path.join(copy, 'metrics.jsonl')
  with open(log, 'rb') as f:
    lines = f.read()
  _replace(log, lines + lines.splitlines()[-1][:22])  # a kill -9 in the middle of a write
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(checkpoint_config(**{'total_steps': 4, 'checkpoint.every_steps': 1,
                                                  'checkpoint.keep': 1}), copy)
  text = caplog.text
  assert 'checkpoints/3 is corrupt: _CHECKPOINT_METADATA is empty' in text
  assert f'Resumed from {copy}/checkpoints/2.' in text
  assert 'metrics.jsonl: dropped its torn last line (' in text
  assert without_wall_clock(metrics_records(copy)) == without_wall_clock(reference)
  assert os.listdir(os.path.join(copy, 'checkpoints')) == ['4']
  assert os.listdir(os.path.join(copy, checkpoint.CORRUPT_DIR)) == ['3']


_SAVE_FAILS = """
import errno, os, runpy, sys
from etils import epath
cls = type(epath.Path('/'))
real = cls.write_text
def write_text(self, *args, **kwargs):  # Orbax writes its JSON files through this
  if '/checkpoints/4' in os.fspath(self):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(self))
  return real(self, *args, **kwargs)
cls.write_text = write_text
sys.argv[0] = 'main'
runpy.run_module('alexnet_jax.main', run_name='__main__')
"""


def test_failed_save_ends_in_one_line_nonzero_and_leaves_the_checkpoint_before(run, tmp_path):
  # Orbax's and tensorstore's background threads still print their own tracebacks before (and
  # tensorstore some after) main's line; the line is the run's one error.
  """The CLI with ENOSPC injected into Orbax's writes of step 4 (keep=1: nothing to make room for)."""
  config, workdir, _ = run
  copy = link_copy(workdir, tmp_path / 'w')
  flags = ['--config=configs/default.py', f'--workdir={copy}', *tiny_flags(**{
      'data.batch_size': 8, 'model.num_classes': 8, 'total_steps': 4, 'log_every_steps': 1,
      'checkpoint.every_steps': 1, 'checkpoint.keep': 1})]  # the shared run's, saved each step
  env = cli_environ({'PYTHONPATH': REPO, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  result = subprocess.run([sys.executable, '-c', _SAVE_FAILS, *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, result.stderr[-3000:]
  assert errors[0].startswith(f'error: could not write {copy}/checkpoints/4') and (
      'No space left on device (ENOSPC)' in errors[0]), errors[0]
  saved = os.listdir(os.path.join(copy, 'checkpoints'))
  assert '3' in saved and '4' not in saved, saved  # and Orbax's 4.orbax-checkpoint-tmp-*
  state = checkpoint.Checkpoints(copy, config).restore_latest(abstract_state(config))
  assert int(state.step) == 3 and not os.path.exists(os.path.join(copy, checkpoint.CORRUPT_DIR))
