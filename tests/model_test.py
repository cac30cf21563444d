"""AlexNet: parameter counts, shapes, knobs, LRN, initialisation, adaptive pooling, dropout masks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from alexnet_jax import model as model_lib
from alexnet_jax import pooling
from alexnet_jax.model import AlexNet


def _abstract_params(model, size=224):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))['params']


@pytest.mark.parametrize('kwargs, expected', [
    (dict(variant='paper'), 60_965_224),
    (dict(variant='paper', groups=1), 62_378_344),
    (dict(variant='torchvision'), 61_100_840),
])
def test_exact_parameter_counts(kwargs, expected):
  assert model_lib.count_params(_abstract_params(AlexNet(**kwargs))) == expected


@pytest.mark.parametrize('size', [64, 96, 224, 227])
@pytest.mark.parametrize('variant', ['paper', 'torchvision'])
def test_any_input_from_64_gives_logits(variant, size):
  model = AlexNet(variant=variant, num_classes=7)
  images = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
  logits = jax.eval_shape(lambda v: model.apply(v, images), variables)
  assert logits.shape == (2, 7)
  assert variables['params']['fc6']['kernel'].shape == (6 * 6 * 256, 4096)


def test_paper_feature_map_sizes_follow_the_paper():
  model = AlexNet(variant='paper')
  images = jnp.zeros((1, 224, 224, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
  _, inter = jax.eval_shape(lambda v: model.apply(v, images, capture_intermediates=True,
                                                  mutable=['intermediates']), variables)
  shapes = {k: v['__call__'][0].shape for k, v in inter['intermediates'].items() if k.startswith('conv')}
  assert shapes['conv1'] == (1, 55, 55, 96)  # the paper's 55x55x96
  assert shapes['conv2'] == (1, 27, 27, 256)
  assert shapes['conv5'] == (1, 13, 13, 256)


def _layer_outputs(model, images, train=False):
  """(params, {'conv1': output, ..., 'fc8': output}); dropout with a fixed key when train."""
  variables = model.init(jax.random.key(0), images)
  _, state = model.apply(variables, images, train=train, rngs={'dropout': jax.random.key(2)},
                         capture_intermediates=True, mutable=['intermediates'])
  outputs = {k: v['__call__'][0] for k, v in state['intermediates'].items() if k != '__call__'}
  return variables['params'], outputs


def _close(got, want):
  return float(np.abs(np.asarray(got, np.float32) - want).max()) <= 1e-5 * float(np.abs(want).max())


def _conv2_from_conv1(params, conv1, *, act=nn.relu, lrn=True, window=3, groups=2):
  """conv2's output recomputed from conv1's: activation, LRN, max pool, conv2 in groups."""
  x = act(conv1)
  x = model_lib.local_response_norm(x) if lrn else x
  x = pooling.max_pool(x, window, 2)
  return model_lib.Conv(256, 5, 1, 2, groups).apply({'params': params['conv2']}, x)


@pytest.mark.parametrize('knobs, between', [
    (dict(), dict()),
    (dict(activation='tanh'), dict(act=jnp.tanh)),
    (dict(lrn=False), dict(lrn=False)),
    (dict(overlap_pool=False), dict(window=2)),
])
def test_trunk_knobs_change_what_lies_between_conv1_and_conv2(knobs, between):
  """conv2's output is conv2 of pool(LRN(act(conv1))) with the knob's activation, LRN, window."""
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  params, out = _layer_outputs(AlexNet(num_classes=5, fc_width=64, **knobs), images)
  assert _close(out['conv2'], _conv2_from_conv1(params, out['conv1'], **between))
  if knobs:  # the paper's settings would have given another conv2 output
    assert not _close(out['conv2'], _conv2_from_conv1(params, out['conv1']))


def test_groups_knob_splits_conv2_conv4_conv5_only():
  two = _abstract_params(AlexNet(), 64)
  one = _abstract_params(AlexNet(groups=1), 64)
  for name in ('conv1', 'conv2', 'conv3', 'conv4', 'conv5'):
    halved = two[name]['kernel'].shape[2] * 2 == one[name]['kernel'].shape[2]
    assert halved == (name in ('conv2', 'conv4', 'conv5')), name
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  params, out = _layer_outputs(AlexNet(num_classes=5, fc_width=64, groups=1), images)
  assert _close(out['conv2'], _conv2_from_conv1(params, out['conv1'], groups=1))


@pytest.mark.parametrize('activation', ['relu', 'tanh'])
def test_activation_knob_reaches_the_classifier(activation):
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  params, out = _layer_outputs(AlexNet(num_classes=5, fc_width=64, activation=activation), images)
  act = jnp.tanh if activation == 'tanh' else nn.relu
  fc7 = act(out['fc6']) @ params['fc7']['kernel'] + params['fc7']['bias']
  assert _close(out['fc7'], fc7)


@pytest.mark.parametrize('rate, dropped', [(0.5, True), (0.0, False)])
def test_dropout_rate_knob_drops_fc6_and_fc7_inputs_in_training_only(rate, dropped):
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  model = AlexNet(num_classes=5, fc_width=64, dropout_rate=rate)
  _, train = _layer_outputs(model, images, train=True)
  _, evaluation = _layer_outputs(model, images, train=False)
  for name in ('conv1', 'conv5'):
    np.testing.assert_array_equal(train[name], evaluation[name])
  for name in ('fc6', 'fc7'):
    assert _close(train[name], evaluation[name]) != dropped, name


def test_bfloat16_knob_computes_every_layer_in_bfloat16_with_float32_params_and_logits():
  images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
  model = AlexNet(num_classes=5, fc_width=64, dtype='bfloat16')
  params, out = _layer_outputs(model, images)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  assert sorted(out) == ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8']
  assert all(v.dtype == jnp.bfloat16 for v in out.values()), {k: v.dtype for k, v in out.items()}
  assert model.apply({'params': params}, images).dtype == jnp.float32


def test_bad_knob_values_are_rejected_with_the_key_name():
  images = jnp.zeros((1, 64, 64, 3))
  for kwargs, key in [(dict(variant='vgg'), 'model.variant'), (dict(groups=3), 'model.groups'),
                      (dict(activation='gelu'), 'model.activation'),
                      (dict(weight_init='xavier'), 'model.weight_init')]:
    with pytest.raises(ValueError, match=key):
      AlexNet(**kwargs).init(jax.random.key(0), images)


def test_lrn_matches_the_papers_equation():
  x = np.random.default_rng(0).normal(scale=30.0, size=(2, 3, 4, 11)).astype(np.float32)
  k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
  expected = np.empty_like(x)
  channels = x.shape[-1]
  for i in range(channels):  # b_i = a_i / (k + alpha sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta
    lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
    expected[..., i] = x[..., i] / (k + alpha * np.sum(x[..., lo:hi + 1] ** 2, -1)) ** beta
  np.testing.assert_allclose(model_lib.local_response_norm(jnp.asarray(x)), expected, rtol=1e-5)


def test_paper_initialisation_statistics():
  params = AlexNet(variant='paper', fc_width=64).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']
  ones = {'conv2', 'conv4', 'conv5', 'fc6', 'fc7'}
  for name, layer in params.items():
    kernel = np.asarray(layer['kernel'])
    assert abs(kernel.std() - 0.01) < 0.0005 and abs(kernel.mean()) < 0.001, name
    np.testing.assert_array_equal(layer['bias'], 1.0 if name in ones else 0.0)


def test_torchvision_initialisation_is_pytorchs_default():
  params = AlexNet(variant='torchvision', fc_width=64).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']
  for name, layer in params.items():
    kernel = np.asarray(layer['kernel'])
    fan_in = int(np.prod(kernel.shape[:-1]))
    bound = 1 / np.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and PyTorch's bias init share it
    assert np.abs(kernel).max() <= bound * (1 + 1e-6), name
    assert np.abs(layer["bias"]).max() <= bound * (1 + 1e-6), name
    np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.05, err_msg=name)


@pytest.mark.parametrize('variant', ['paper', 'torchvision'])
def test_he_initialisation_statistics(variant):
  params = AlexNet(variant=variant, weight_init='he', fc_width=64).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']
  for name, layer in params.items():
    kernel = np.asarray(layer['kernel'])
    fan_in = int(np.prod(kernel.shape[:-1]))  # per group for the grouped convolutions
    np.testing.assert_allclose(kernel.std(), np.sqrt(2 / fan_in), rtol=0.05, err_msg=name)
    np.testing.assert_array_equal(layer['bias'], 0.0)


def test_weight_init_knob_crosses_variants():
  params = AlexNet(variant='torchvision', weight_init='paper', fc_width=64).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']
  assert abs(np.asarray(params['conv3']['kernel']).std() - 0.01) < 0.0005
  np.testing.assert_array_equal(params['fc6']['bias'], 1.0)
  np.testing.assert_array_equal(params['conv1']['bias'], 0.0)


@pytest.mark.parametrize('in_size', [1, 3, 5, 13])
def test_adaptive_pool_matches_torchvision_bins(in_size):
  x = np.random.default_rng(0).normal(size=(1, in_size, in_size, 2)).astype(np.float32)
  out = np.asarray(model_lib.adaptive_avg_pool(jnp.asarray(x)))
  for i in range(6):
    for j in range(6):
      r0, r1 = (i * in_size) // 6, -(-(i + 1) * in_size // 6)
      c0, c1 = (j * in_size) // 6, -(-(j + 1) * in_size // 6)
      np.testing.assert_allclose(out[0, i, j], x[0, r0:r1, c0:c1].mean((0, 1)), rtol=1e-5)


def test_dropout_mask_depends_only_on_example_id_and_column():
  key = jax.random.key(3)
  x = jnp.ones((4, 16))
  ids = jnp.array([10, 11, 12, 13])
  full = model_lib.per_example_dropout(x, 0.5, key, ids)
  # The same examples in another order, and a column slice, see the same mask entries.
  shuffled = model_lib.per_example_dropout(x, 0.5, key, ids[::-1])
  np.testing.assert_array_equal(shuffled[::-1], full)
  part = model_lib.per_example_dropout(x[:, :8], 0.5, key, ids, column_offset=8, total_columns=16)
  np.testing.assert_array_equal(part, full[:, 8:])
  assert set(np.unique(full).tolist()) == {0.0, 2.0}
  assert 0.3 < float(jnp.mean(full == 0)) < 0.7


def test_full_size_paper_forward_is_finite():
  model = AlexNet(variant='paper')
  images = jax.random.uniform(jax.random.key(0), (2, 224, 224, 3), minval=-2, maxval=2)
  variables = model.init(jax.random.key(1), images[:1])
  logits = model.apply(variables, images, train=True, rngs={'dropout': jax.random.key(2)})
  assert logits.shape == (2, 1000) and bool(jnp.all(jnp.isfinite(logits)))


def test_grouped_conv_equals_xlas_feature_group_convolution():
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 8))
  conv = model_lib.Conv(features=6, kernel=3, stride=1, padding=1, groups=2)
  variables = conv.init(jax.random.key(1), x)
  kernel = variables['params']['kernel']
  assert kernel.shape == (3, 3, 4, 6)
  want = jax.lax.conv_general_dilated(x, kernel, (1, 1), [(1, 1), (1, 1)],
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=2)
  np.testing.assert_allclose(conv.apply(variables, x), want, rtol=1e-5, atol=1e-6)
