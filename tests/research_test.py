"""Gradient accumulation, the moving average of the parameters and the paper's plateau rule."""
import functools
import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from conftest import abstract_state
from conftest import metrics_records
from conftest import tiny_config
from conftest import train_parts

from alexnet_jax import checkpoint
from alexnet_jax import inference
from alexnet_jax import input_pipeline
from alexnet_jax import optim
from alexnet_jax import parallel
from alexnet_jax import train
from alexnet_jax import train_step as step_lib
from alexnet_jax.tools import comm_report

from train_step_test import _batch
from train_step_test import _mesh
from train_step_test import _paper_sgd
from train_step_test import _update
from train_step_test import NUM_CLASSES
from train_step_test import SIZE
from train_step_test import UPDATE_RTOL

MODEL = dict(num_classes=NUM_CLASSES, fc_width=64)


@functools.cache  # the one-device reference is shared by the meshes' tests
def _one_step(mesh_shape, accumulate_steps, n=16):
  from alexnet_jax.model import AlexNet  # pylint: disable=g-import-not-at-top
  model = AlexNet(**MODEL)
  mesh = _mesh(*mesh_shape)
  state, specs = step_lib.create_train_state(model, _paper_sgd(), mesh, image_size=SIZE, seed=0)
  step = step_lib.make_train_step(model, _paper_sgd(), mesh, specs, seed=0,
                                  accumulate_steps=accumulate_steps)
  state, metrics = step(state, parallel.global_batch(mesh, _batch(0, n)))
  return {k: float(v) for k, v in metrics.items()}, _update(state)


@pytest.mark.parametrize('mesh_shape,accumulate', [((1, 1), 4), ((4, 2), 2)])
def test_accumulated_update_is_the_full_batch_update_dropout_included(mesh_shape, accumulate):
  """K micro-batches of B/K: the full batch's update within float32 summation order, with the
  paper's dropout on (its masks follow the examples' global ids, not their micro-batch)."""
  want_metrics, want = _one_step((1, 1), 1)
  got_metrics, got = _one_step(mesh_shape, accumulate)
  for key in ('loss', 'top1', 'top5'):
    np.testing.assert_allclose(got_metrics[key], want_metrics[key], rtol=1e-5)
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    error = np.abs(g - w).max() / np.abs(w).max()
    assert error <= UPDATE_RTOL, jax.tree_util.keystr(path)


def test_accumulation_lowers_the_compiled_steps_peak_memory():
  """The step's peak per device as comm_report reads it from the compiled program (compiled only:
  128-px images, 32 a device, so that activations outweigh the parameters' buffers)."""
  peaks = {}
  for k in (1, 4):
    config = tiny_config(**{'data.batch_size': 256, 'data.image_size': 128,
                            'optimizer.accumulate_steps': k})
    peaks[k] = comm_report.build_report(config)['memory']['temporaries']
  assert peaks[4] < 0.5 * peaks[1], peaks


def test_accumulate_steps_that_do_not_divide_the_device_batch_are_a_clear_error(tmp_path):
  config = tiny_config(**{'optimizer.accumulate_steps': 3})  # batch 16 on 8 devices: 2 each
  with pytest.raises(parallel.MeshError, match='accumulate_steps=3.*2 examples'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_ema_follows_the_parameters_step_by_step():
  """ema_0 = the initial parameters; ema_t = d ema_(t-1) + (1 - d) params_t."""
  config = tiny_config(**{'optimizer.ema_decay': 0.75})
  mesh, tx, model = train_parts(config)
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=64, seed=0, ema=True)
  step = step_lib.make_train_step(model, tx, mesh, specs, seed=0, ema_decay=0.75)
  want = jax.device_get(state.params)
  for i in range(3):
    state, _ = step(state, parallel.global_batch(mesh, _batch(i, 16)))
    want = jax.tree.map(lambda e, p: 0.75 * e + 0.25 * p, want, jax.device_get(state.params))
  got = jax.device_get(state.ema_params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-8)
  assert not np.allclose(got['fc8']['kernel'], jax.device_get(state.params)['fc8']['kernel'])


@pytest.fixture
def small_eval(monkeypatch):
  """The synthetic eval split at 32 examples (2 batches), not 256: these runs evaluate up to 10
  times, and what they test is what happens around an evaluation, not its size."""
  monkeypatch.setattr(input_pipeline, 'SYNTHETIC_EVAL_EXAMPLES', 32)


def _ema_config(**overrides):
  return tiny_config(**{'optimizer.ema_decay': 0.5, 'total_steps': 4, 'checkpoint.every_steps': 2,
                        'eval_every_steps': 2, **overrides})


@pytest.mark.usefixtures('small_eval')
def test_ema_resumes_exactly_evaluates_both_and_loads_for_inference(tmp_path):
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  final = train.train_and_evaluate(_ema_config(), straight)
  train.train_and_evaluate(_ema_config(total_steps=2), resumed)
  train.train_and_evaluate(_ema_config(), resumed)
  # Every eval row reports the raw parameters and their average, and they differ.
  evals = [r for r in metrics_records(straight) if r['split'] == 'eval']
  assert [r['step'] for r in evals] == [2, 4]
  assert all('ema_loss' in r and 'ema_top1' in r and r['ema_loss'] != r['loss'] for r in evals)
  assert final['ema_loss'] == evals[-1]['ema_loss']
  # The resumed run's average is the uninterrupted one's, bit for bit.
  ema = {w: checkpoint.load_params(w, 4, ema=True)[0] for w in (straight, resumed)}
  for a, b in zip(jax.tree.leaves(ema[straight]), jax.tree.leaves(ema[resumed])):
    np.testing.assert_array_equal(a, b)
  raw = checkpoint.load_params(straight, 4)[0]
  assert not np.array_equal(raw['fc8']['kernel'], ema[straight]['fc8']['kernel'])
  # inference.load(ema=True) classifies with the average.
  classifier = inference.load(straight, ema=True)
  np.testing.assert_array_equal(jax.device_get(classifier.params)['fc8']['kernel'],
                                ema[straight]['fc8']['kernel'])
  # A run started from this one (init_from) starts its average at the loaded parameters, not at
  # its own random initialisation.
  mesh, tx, model = train_parts(_ema_config())
  fresh, _ = step_lib.create_train_state(model, tx, mesh, image_size=64, seed=1, ema=True)
  started = checkpoint.init_from(straight, fresh)
  for a, b, c in zip(jax.tree.leaves(jax.device_get(started.ema_params)),
                     jax.tree.leaves(jax.device_get(started.params)), jax.tree.leaves(raw)):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)


@pytest.mark.usefixtures('small_eval')
def test_turning_ema_on_at_a_resume_is_a_clear_error_that_moves_nothing(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(_ema_config(**{'optimizer.ema_decay': 0.0, 'total_steps': 2}), workdir)
  before = sorted(os.listdir(os.path.join(workdir, 'checkpoints')))
  with pytest.raises(checkpoint.CheckpointError, match='optimizer.ema_decay: no moving average'):
    train.train_and_evaluate(_ema_config(), workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == before
  assert not os.path.exists(os.path.join(workdir, 'corrupt_checkpoints'))
  with pytest.raises(checkpoint.CheckpointError, match='no moving average'):
    checkpoint.load_params(workdir, ema=True)


def _plateau_opt(**overrides):
  values = dict(schedule='plateau', plateau_metric='loss', patience=2, max_decays=2,
                decay_factor=0.1)
  values.update(overrides)
  return ml_collections.ConfigDict(values)


def test_plateau_rule_divides_after_patience_evals_without_improvement_up_to_max_decays():
  opt = _plateau_opt()
  state = optim.scale_by_plateau().init(None)
  scales = []
  for loss in (1.0, 0.9, 0.95, 0.92, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85):
    state = optim.observe_eval((state,), {'loss': loss}, opt)[0]
    scales.append(float(state.scale))
  np.testing.assert_allclose(scales, [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01],
                             rtol=1e-6)
  assert int(state.decays) == 2  # max_decays: no third division
  top1 = optim.scale_by_plateau().init(None)
  for value in (0.5, 0.6, 0.6, 0.55):  # top-1: higher is better
    top1 = optim.observe_eval((top1,), {'top1': value}, _plateau_opt(plateau_metric='top1'))[0]
  assert float(top1.scale) == pytest.approx(0.1)


def _plateau_run_config(**overrides):
  # A learning rate too small to move the top-1: every evaluation after the first is a stall.
  return tiny_config(**{'optimizer.schedule': 'plateau', 'optimizer.learning_rate': 1e-7,
                        'optimizer.plateau_metric': 'top1', 'optimizer.patience': 1,
                        'optimizer.max_decays': 2, 'total_steps': 5, 'eval_every_steps': 1,
                        'log_every_steps': 1, 'checkpoint.every_steps': 2, **overrides})


@pytest.mark.usefixtures('small_eval')
def test_plateau_run_logs_the_divided_rate_and_resumes_its_state_exactly(tmp_path):
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  train.train_and_evaluate(_plateau_run_config(), straight)
  train.train_and_evaluate(_plateau_run_config(total_steps=2), resumed)
  train.train_and_evaluate(_plateau_run_config(), resumed)
  rates = {w: [r['learning_rate'] for r in metrics_records(w) if r['split'] == 'train']
           for w in (straight, resumed)}
  # Evals after steps 1..5: the first sets the best, each later one stalls (patience 1) and
  # divides, twice at most: steps 1-2 at 1e-7, step 3 at 1e-8, steps 4-5 at 1e-9. The resumed
  # run restarts at step 2, after the eval that divided.
  np.testing.assert_allclose(rates[straight], [1e-7, 1e-7, 1e-8, 1e-9, 1e-9], rtol=1e-5)
  assert rates[resumed] == rates[straight]
  with open(os.path.join(straight, 'config.json')) as f:
    assert json.load(f)['optimizer']['schedule'] == 'plateau'


def test_plateau_without_evaluations_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='eval_every_steps'):
    train.train_and_evaluate(_plateau_run_config(eval_every_steps=0), str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_a_state_without_the_average_has_no_entry_for_it():
  """So that checkpoints written before the average existed restore into today's state."""
  paths = lambda state: {str(p[0]) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]}
  assert paths(abstract_state(tiny_config())) == {'.step', '.params', '.opt_state'}
