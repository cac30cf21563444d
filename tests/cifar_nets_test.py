"""cuda-convnet's CIFAR-10 networks: the layer files' shapes, inits, norms and pools; one training path."""
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from alexnet_jax import cifar_nets
from alexnet_jax import model as model_lib
from alexnet_jax import parallel
from alexnet_jax import train_step as step_lib

import conftest


def _conv(k, c_in, f):  # a shared-weight layer: k*k*c_in*f weights, f biases
  return k * k * c_in * f + f


def _local(positions, k, c_in, f):  # unshared: a kernel and a bias per output position
  return positions * (k * k * c_in * f + f)


# By hand from layers-18pct.cfg and layers-conv-local-11pct.cfg: 32 -> pools 16, 8, 4 (1 + ceil((n - 3) / 2));
# 24 -> pools 12, 6, and the local layers keep 6x6 (3x3, padding 1).
HAND_COUNTS = {
    'cifar18pct': _conv(5, 3, 32) + _conv(5, 32, 32) + _conv(5, 32, 64) + 4 * 4 * 64 * 10 + 10,
    'cifar_conv_local': (_conv(5, 3, 64) + _conv(5, 64, 64) + _local(36, 3, 64, 64)
                         + _local(36, 3, 64, 32) + 6 * 6 * 32 * 10 + 10),
}


def _params(variant, **fields):
  size = cifar_nets.IMAGE_SIZE[variant]
  net = cifar_nets.CifarNet(variant=variant, **fields)
  return net, jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, size, size, 3)))['params']


@pytest.mark.parametrize('variant', sorted(HAND_COUNTS))
def test_parameter_counts_are_the_layer_files(variant):
  size = cifar_nets.IMAGE_SIZE[variant]
  shapes = jax.eval_shape(cifar_nets.CifarNet(variant=variant).init, jax.random.key(0),
                          jnp.zeros((1, size, size, 3)))['params']  # shapes only: nothing runs
  assert model_lib.count_params(shapes) == HAND_COUNTS[variant]
  assert HAND_COUNTS == {'cifar18pct': 89_578, 'cifar_conv_local': 2_112_970}


@pytest.mark.parametrize('variant', sorted(HAND_COUNTS))
def test_kernels_start_with_the_files_initw_as_std_and_biases_at_zero(variant):
  _, params = _params(variant)
  assert set(params) == set(cifar_nets.INIT_STD[variant])
  for layer, std in cifar_nets.INIT_STD[variant].items():
    kernel = np.asarray(params[layer]['kernel'])
    assert abs(kernel.mean()) < 0.1 * std and abs(kernel.std() / std - 1) < 0.05, layer
    assert not np.any(np.asarray(params[layer]['bias'])), layer


def _norm_reference(x, norm):
  """The cuda-convnet kernels' loops: 1 + scale / region * sum of squares, to the power -pow."""
  b, h, w, c = x.shape
  out = np.empty_like(x)
  for f in range(c):
    for i in range(h):
      for j in range(w):
        if norm.cross_map:
          lo = f - norm.size // 2
          window = x[:, i, j, max(0, lo):min(c, lo + norm.size)]
          region = norm.size
        else:
          lo_i, lo_j = i - norm.size // 2, j - norm.size // 2
          window = x[:, max(0, lo_i):lo_i + norm.size, max(0, lo_j):lo_j + norm.size, f]
          region = norm.size**2
        squares = np.square(window).reshape(b, -1).sum(axis=1)
        out[:, i, j, f] = x[:, i, j, f] * (1 + norm.scale / region * squares) ** -norm.pow
  return out


@pytest.mark.parametrize('variant', sorted(cifar_nets.NORMS))
def test_response_norms_follow_cuda_convnet(variant):
  norm = cifar_nets.NORMS[variant]
  x = np.random.default_rng(0).normal(scale=30, size=(2, 5, 6, 12)).astype(np.float32)
  got = np.asarray(cifar_nets.response_norm(jnp.asarray(x), norm))
  np.testing.assert_allclose(got, _norm_reference(x, norm), rtol=1e-5)
  assert np.abs(got - x).max() > 1e-2  # at this scale the norm changes the numbers


def _pool_reference(x, kind, window, stride):
  b, h, w, c = x.shape
  out_h, out_w = (1 + -(-(n - window) // stride) for n in (h, w))
  out = np.empty((b, out_h, out_w, c), np.float32)
  for i in range(out_h):
    for j in range(out_w):
      patch = x[:, i * stride:i * stride + window, j * stride:j * stride + window]
      out[:, i, j] = patch.max(axis=(1, 2)) if kind == 'max' else patch.mean(axis=(1, 2))
  return out


@pytest.mark.parametrize('kind', ['max', 'avg'])
@pytest.mark.parametrize('size', [32, 24, 12, 8, 7])
def test_pools_cover_the_edge_as_cuda_convnet(kind, size):
  """1 + ceil((n - 3) / 2) outputs (32 -> 16 -> 8 -> 4; 24 -> 12 -> 6); the last window holds the
  pixels inside the image only, and the gradient is that of the reference's formula."""
  x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
  pool = jax.jit(lambda v: cifar_nets.cuda_convnet_pool(v, kind, 3, 2))
  np.testing.assert_allclose(pool(x), _pool_reference(x, kind, 3, 2), rtol=1e-6)
  weights = np.random.default_rng(1).normal(size=_pool_reference(x, kind, 3, 2).shape)
  grad = jax.grad(lambda v: jnp.sum(pool(v) * weights))(x)
  if kind == 'avg':  # each pixel gets weight / (pixels of the window) from every window over it
    want = np.zeros_like(x)
    for i in range(weights.shape[1]):
      for j in range(weights.shape[2]):
        patch = want[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        patch += weights[:, i:i + 1, j:j + 1] / (patch.shape[1] * patch.shape[2])
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)
  else:  # max: all of each window's gradient on its maximum
    np.testing.assert_allclose(np.asarray(grad).sum(), weights.sum(), rtol=1e-5)


def test_local_layer_is_flax_conv_local():
  """The same parameters give nn.ConvLocal's outputs and gradients."""
  x = jax.random.normal(jax.random.key(0), (3, 6, 6, 16))
  ours = cifar_nets.LocalConv(8, 3, 1, nn.initializers.normal(0.1))
  params = ours.init(jax.random.key(1), x)['params']
  params = {**params, 'bias': jax.random.normal(jax.random.key(2), params['bias'].shape)}
  flax_local = nn.ConvLocal(8, (3, 3), padding=1)
  assert jax.tree.map(jnp.shape, flax_local.init(jax.random.key(1), x)['params']) == jax.tree.map(
      jnp.shape, params)
  for fn in (lambda m, p: m.apply({'params': p}, x),
             lambda m, p: jax.grad(lambda q: jnp.sum(jnp.sin(m.apply({'params': q}, x))))(p)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 fn(ours, params), fn(flax_local, params))


def test_knobs_change_the_network_not_its_parameters():
  images = jax.random.uniform(jax.random.key(0), (2, 24, 24, 3))
  net, params = _params('cifar_conv_local')
  # Trained-sized conv1 kernels: at the files' initW (1e-4) the norms change logits by ~1e-6 only.
  params = {**params, 'conv1': {**params['conv1'], 'kernel': params['conv1']['kernel'] * 300}}
  logits = net.apply({'params': params}, images)
  for knob in (dict(lrn=False), dict(activation='tanh'), dict(overlap_pool=False)):
    other = cifar_nets.CifarNet(variant='cifar_conv_local', **knob)
    if knob != dict(overlap_pool=False):  # 2/2 pools change the map sizes
      change = np.abs(other.apply({'params': params}, images) - logits).max()
      assert change > 0.01 * np.abs(logits).max(), knob
  with pytest.raises(ValueError, match='set --config.model.groups=1'):
    _params('cifar18pct', groups=2)


def test_built_from_a_config_like_alexnet():
  config = conftest.tiny_config(**{'model.variant': 'cifar18pct', 'model.num_classes': 10})
  assert isinstance(model_lib.build(config.model), cifar_nets.CifarNet)
  with pytest.raises(ValueError, match='cifar18pct'):
    model_lib.build({**config.model, 'variant': 'cifar'}).init(jax.random.key(0),
                                                                jnp.zeros((1, 32, 32, 3)))


def _steps(mesh_shape, variant, steps=3):
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=mesh_shape[0], model=1)),
                            jax.devices()[:mesh_shape[0]])
  model = cifar_nets.CifarNet(variant=variant, dropout_rate=0.5)
  tx = optax.sgd(0.01, momentum=0.9)
  size = cifar_nets.IMAGE_SIZE[variant]
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=size, seed=0)
  step = step_lib.make_train_step(model, tx, mesh, specs, seed=0)
  rng, losses = np.random.default_rng(0), []
  for _ in range(steps):
    batch = {'image': rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8),
             'label': rng.integers(0, 10, 16).astype(np.int32)}
    state, metrics = step(state, parallel.global_batch(mesh, batch))
    losses.append(float(metrics['loss']))
  return losses, jax.device_get(state.params)


@pytest.mark.parametrize('variant', ['cifar_conv_local'])  # its local layers and both pools' kin
def test_eight_devices_give_the_one_device_numbers_with_dropout(variant):
  losses, params = _steps((8,), variant)
  ref_losses, ref_params = _steps((1,), variant)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), params,
               ref_params)


def test_trained_and_used_through_the_cli_as_alexnet(tmp_path):
  """configs/cifar10_conv_local.py on a folder of photos: main trains and evaluates with 10 crops,
  evaluate gives the run's own eval row, predict and filters read the run."""
  photos = conftest.write_photos(str(tmp_path / 'photos' / 'train'))
  workdir = tmp_path / 'run'
  command = [sys.executable, '-m', 'alexnet_jax.main', '--config=configs/cifar10_conv_local.py',
             f'--workdir={workdir}', f'--config.data.name=folder:{tmp_path / "photos"}',
             f'--config.data.data_dir={tmp_path / "tfds"}', '--config.model.num_classes=4',
             '--config.data.batch_size=8', '--config.total_steps=4', '--config.log_every_steps=2',
             '--config.eval_every_steps=0', '--config.data.eval_crops=10']
  trained = subprocess.run(command, cwd=conftest.REPO, env=conftest.cli_environ(),
                           capture_output=True, text=True, timeout=600)
  assert trained.returncode == 0, trained.stderr[-3000:]
  with open(workdir / 'metrics.jsonl') as f:
    last = [r for r in map(json.loads, f) if r['split'] == 'eval'][-1]
  assert last['step'] == 4 and last['count'] == 4  # train[90%:] of 40 photos
  evaluated, predicted, filters = conftest.run_modules(
      ('alexnet_jax.tools.evaluate', f'--workdir={workdir}'),
      ('alexnet_jax.tools.predict', f'--workdir={workdir}', '--json', f'{photos}/class1/1.png'),
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', f'--output={tmp_path / "f.png"}'))
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.splitlines()[-1])
  assert metrics == {k: last[k] for k in ('count', 'loss', 'top1', 'top5')}
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  prediction = json.loads(predicted.stdout.splitlines()[-1])
  names = sorted(p['name'] for p in prediction['predictions'])
  assert names == ['class0', 'class1', 'class2', 'class3']  # top 5 of 4 classes: all, named
  assert abs(sum(p['probability'] for p in prediction['predictions']) - 1) < 1e-5
  assert filters.returncode == 0 and os.path.exists(tmp_path / 'f.png'), filters.stderr[-3000:]
