"""Checkpoints in one process: keep last N + best, damaged steps, incompatible workdirs, other meshes,
init_from, the NaN stop. Multi-process, kill -9 and SIGTERM runs are in resume_test.py."""
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import checkpoint
from alexnet_jax import checksums
from alexnet_jax import input_pipeline
from alexnet_jax import parallel
from alexnet_jax import train
from alexnet_jax import train_step as step_lib
from conftest import abstract_state
from conftest import checkpoint_config
from conftest import metrics_records
from conftest import snapshot
from conftest import train_parts


def train_metrics(workdir):
  return {r['step']: r for r in metrics_records(workdir) if r['split'] == 'train'}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A finished 3-step run on the 8x1 mesh: checkpoints 2 and 3, metrics of every step."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = checkpoint_config()
  train.train_and_evaluate(config, workdir)
  return config, workdir


@pytest.fixture
def run_copy(run, tmp_path):
  config, workdir = run
  shutil.copytree(workdir, tmp_path / 'w')
  return config, str(tmp_path / 'w')


def test_keeps_the_last_n_and_the_best_by_top1(run, tmp_path):
  config = checkpoint_config(**{'checkpoint.keep': 2})
  state = checkpoint.Checkpoints(run[1], config).restore_latest(abstract_state(config))
  ckpts = checkpoint.Checkpoints(str(tmp_path), config)
  for step, top1 in [(1, None), (2, 0.9), (3, None), (4, 0.2), (5, None)]:
    ckpts.save(step, state.replace(step=jnp.full_like(state.step, step)), top1)
  ckpts.close()
  assert sorted(map(int, os.listdir(tmp_path / 'checkpoints'))) == [2, 4, 5]
  ckpts = checkpoint.Checkpoints(str(tmp_path), config)  # the best is remembered across restarts
  ckpts.save(6, state.replace(step=jnp.full_like(state.step, 6)), 0.5)
  ckpts.close()
  assert sorted(map(int, os.listdir(tmp_path / 'checkpoints'))) == [2, 5, 6]


def _truncate(step_dir):
  files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, 'state')) for f in fs]
  biggest = max(files, key=os.path.getsize)
  os.truncate(biggest, os.path.getsize(biggest) // 2)


def _flip_a_byte(step_dir):
  files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, 'state')) for f in fs]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, 'r+b') as f:
    f.seek(os.path.getsize(biggest) // 2)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 0x55]))


DAMAGE = {
    'truncated': _truncate,
    'flipped_byte': _flip_a_byte,
    'no_state': lambda d: shutil.rmtree(os.path.join(d, 'state')),
    'garbage_meta': lambda d: open(os.path.join(d, 'meta', 'metadata'), 'w').write('{"ste'),
}


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_corrupt_latest_is_reported_and_the_newest_good_one_used(run_copy, damage, caplog):
  config, workdir = run_copy
  step_dir = os.path.join(workdir, 'checkpoints', '3')
  DAMAGE[damage](step_dir)
  ckpts = checkpoint.Checkpoints(workdir, config)
  with caplog.at_level(logging.WARNING):
    state = ckpts.restore_latest(abstract_state(config))
  assert int(state.step) == 2
  assert any('checkpoints/3 is corrupt' in r.getMessage() for r in caplog.records)
  assert os.path.isdir(os.path.join(workdir, checkpoint.CORRUPT_DIR, '3'))  # kept, moved aside
  ckpts.save(3, state.replace(step=jnp.full_like(state.step, 3)))  # the step number is free again
  ckpts.close()


def test_half_written_step_is_never_the_latest(run_copy):
  config, workdir = run_copy
  folder = os.path.join(workdir, 'checkpoints')
  shutil.copytree(os.path.join(folder, '3'), os.path.join(folder, '4.orbax-checkpoint-tmp'))
  shutil.copytree(os.path.join(folder, '3'), os.path.join(folder, '5.orbax-checkpoint-tmp-1234'))
  state = checkpoint.Checkpoints(workdir, config).restore_latest(abstract_state(config))
  assert int(state.step) == 3


@pytest.mark.parametrize('key,value,message', [
    ('model.num_classes', 16, 'model.num_classes=8 there, 16 here'),
    ('model.variant', 'torchvision', "model.variant='paper' there, 'torchvision' here"),
    ('model.fc_width', 128, 'model.fc_width=64 there, 128 here'),
    ('optimizer.name', 'adamw', "optimizer.name='sgd' there, 'adamw' here"),
    ('optimizer.trainable', 'classifier', "optimizer.trainable='all' there, 'classifier' here"),
])
def test_incompatible_checkpoint_is_refused_in_one_line_naming_the_key(run_copy, key, value,
                                                                       message):
  config, workdir = run_copy
  before = snapshot(workdir)
  new = checkpoint_config(**{key: value})
  with pytest.raises(checkpoint.CheckpointError) as error:  # main.py prints it as `error: ...`
    checkpoint.Checkpoints(workdir, new).restore_latest(abstract_state(new))
  assert isinstance(error.value, ValueError)
  assert message in str(error.value) and '\n' not in str(error.value)
  assert snapshot(workdir) == before


def test_incompatible_workdir_stops_the_run_and_changes_nothing(run_copy):
  config, workdir = run_copy
  before = snapshot(workdir)
  with pytest.raises(checkpoint.CheckpointError, match='model.num_classes=8 there, 16 here'):
    train.train_and_evaluate(checkpoint_config(**{'model.num_classes': 16}), workdir)
  assert snapshot(workdir) == before


@pytest.mark.parametrize('shape', [(4, 1), (4, 2)])
def test_restores_onto_another_mesh_and_trains_on(run_copy, shape):
  """Saved as 8x1 on 8 devices; restored as 4x1 on 4 devices and as 4x2 on 8."""
  config, workdir = run_copy
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '3'))  # resume at 2; the run logged step 3
  new = checkpoint_config(**{'mesh.data': shape[0], 'mesh.model': shape[1]})
  devices = jax.devices()[:shape[0] * shape[1]]
  state = checkpoint.Checkpoints(workdir, new).restore_latest(abstract_state(new, devices))
  mesh, tx, model = train_parts(new, devices)
  specs = step_lib.state_specs(state)
  assert int(state.step) == 2
  assert state.params['fc8']['kernel'].sharding.mesh.shape == dict(data=shape[0], model=shape[1])
  train_step = step_lib.make_train_step(model, tx, mesh, specs, seed=new.seed)
  batch = next(input_pipeline.create_train_iterator(new.data, seed=new.seed, num_classes=8,
                                                    start_step=2))
  state, metrics = train_step(state, parallel.global_batch(mesh, batch))
  assert int(state.step) == 3
  np.testing.assert_allclose(float(metrics['loss']), train_metrics(workdir)[3]['loss'], rtol=1e-5)


def test_init_from_loads_the_trunk_and_reinitialises_a_resized_classifier(run, caplog):
  config, workdir = run
  saved = checkpoint.Checkpoints(workdir, config).restore_latest(abstract_state(config)).params
  new = checkpoint_config(**{'model.num_classes': 4, 'mesh.model': 2})  # another mesh too
  fresh = abstract_state(new)  # stands for the fresh initialisation
  with caplog.at_level(logging.INFO):
    state = checkpoint.init_from(workdir, fresh)
  assert 'loaded conv1, conv2, conv3, conv4, conv5, fc6, fc7; re-initialised fc8' in caplog.text
  for layer in ('conv1', 'fc6', 'fc7'):
    np.testing.assert_array_equal(state.params[layer]['kernel'], saved[layer]['kernel'])
  assert state.params['fc8'] is fresh.params['fc8']  # left as initialised
  assert state.step is fresh.step and state.opt_state is fresh.opt_state
  step_dir = os.path.join(workdir, 'checkpoints', '3')  # a step folder, same num_classes: all of it
  state = checkpoint.init_from(step_dir, abstract_state(config))
  np.testing.assert_array_equal(state.params['fc8']['kernel'], saved['fc8']['kernel'])
  with pytest.raises(checkpoint.CheckpointError, match='only the classifier'):
    checkpoint.init_from(workdir, abstract_state(checkpoint_config(**{'model.fc_width': 32})))


def test_a_new_run_with_init_from_starts_at_step_0_from_the_other_runs_trunk(run, tmp_path,
                                                                           caplog):
  config = checkpoint_config(**{'init_from': run[1], 'model.num_classes': 4, 'total_steps': 1})
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, str(tmp_path))
  assert 'loaded conv1, conv2, conv3, conv4, conv5, fc6, fc7; re-initialised fc8' in caplog.text
  assert sorted(train_metrics(str(tmp_path))) == [1]  # step and optimizer state start afresh


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(run_copy):
  config, workdir = run_copy
  config = checkpoint_config(**{'total_steps': 8, 'checkpoint.every_steps': 1,
                                'optimizer.learning_rate': 1e12})  # resumes at 3, then diverges
  with pytest.raises(train.NonFiniteLossError, match=r'step \d+') as error:
    train.train_and_evaluate(config, workdir)
  bad = error.value.first_bad_step  # the first step whose parameters give a non-finite loss
  assert (f'at step {bad + 1};' in str(error.value) or f'after step {bad};' in str(error.value))
  state = checkpoint.Checkpoints(workdir, config).restore_latest(abstract_state(config))
  assert 3 <= int(state.step) < bad and checksums.all_finite(state.params)
  assert np.isfinite(train_metrics(workdir)[int(state.step) + 1]['loss'])  # its loss was finite
