"""Train and eval steps: the same numbers on every mesh, class-split loss and top-k, overfitting."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from alexnet_jax import model as model_lib
from alexnet_jax import parallel
from alexnet_jax import train_step as step_lib
from alexnet_jax.model import AlexNet

NUM_CLASSES, BATCH, SIZE = 16, 16, 64
UPDATE_RTOL = 1e-5  # measured: at most 1.2e-6 of the largest update of a layer


def _mesh(data, model):
  return parallel.make_mesh(ml_collections.ConfigDict(dict(data=data, model=model)),
                            jax.devices()[:data * model])


def _batch(seed=0, n=BATCH):
  """A train batch as the input pipeline ships it: uint8 pixels whose standardised values are a
  coarse per-class pattern + noise (so that the labels can be learnt), and PCA lighting offsets."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, NUM_CLASSES, n)
  patterns = np.random.default_rng(123).normal(size=(NUM_CLASSES, 8, 8, 3))
  values = patterns[labels].repeat(SIZE // 8, 1).repeat(SIZE // 8, 2)
  values = values + 0.5 * rng.normal(size=(n, SIZE, SIZE, 3))
  mean, std = np.array(model_lib.IMAGENET_MEAN_RGB), np.array(model_lib.IMAGENET_STD_RGB)
  return {'image': np.clip(np.rint(255 * (mean + std * values)), 0, 255).astype(np.uint8),
          'label': labels.astype(np.int32),
          'lighting': rng.normal(scale=0.02, size=(n, 3)).astype(np.float32)}


def _paper_sgd(lr=0.01):
  return optax.chain(optax.add_decayed_weights(5e-4), optax.scale_by_learning_rate(lr),
                     optax.trace(0.9))


def _update(state):
  """The update the last step applied: optax.trace's output, which it keeps as its state."""
  (trace,) = [s for s in state.opt_state if isinstance(s, optax.TraceState)]
  return jax.device_get(trace.trace)


@functools.cache
def _run(mesh_shape, steps=3):
  """(losses, [first step's update, last step's]) of the paper's SGD with dropout on a mesh; each
  mesh's run is made once and shared by the tests that read it."""
  model = AlexNet(num_classes=NUM_CLASSES, fc_width=64)
  mesh = _mesh(*mesh_shape)
  tx = _paper_sgd()
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=SIZE, seed=0)
  train = step_lib.make_train_step(model, tx, mesh, specs, seed=0)
  losses, updates = [], []
  for i in range(steps):
    state, metrics = train(state, parallel.global_batch(mesh, _batch(i)))
    losses.append(float(metrics['loss']))
    if i in (0, steps - 1):  # the first step's update and the last one's
      updates.append(_update(state))
  return np.array(losses), updates


# Pure data parallelism and data + model (class-split FC layers); (4, 2) is the eval tests' mesh.
@pytest.mark.parametrize('mesh_shape', [(8, 1), (2, 4)])
def test_sharded_steps_match_one_device_with_dropout(mesh_shape):
  losses, updates = _run(mesh_shape)
  ref_losses, ref_updates = _run((1, 1))
  # float32 sums in another order (8 partial batch sums, split matmuls): a few ulps per step.
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  for got_tree, want_tree in zip(updates, ref_updates):  # step 1's update and step 3's
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(got_tree),
                                 jax.tree.leaves(want_tree)):
      error = np.abs(got - want).max() / np.abs(want).max()
      assert error <= UPDATE_RTOL, jax.tree_util.keystr(path)


def test_gradient_is_the_one_device_gradient_not_a_multiple():
  """DESIGN.md's trap: the first step on 8 devices moves FC8 as one device would, not 8 (or 1/8)
  times as far (the first update is -lr (gradient + weight decay), with no momentum yet)."""
  deltas = [_run(shape)[1][0]['fc8']['kernel'] for shape in [(1, 1), (8, 1)]]
  ratio = np.abs(deltas[1]).sum() / np.abs(deltas[0]).sum()
  assert abs(ratio - 1.0) < 1e-4


def _split_call(fn, mesh, *args):
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(None, 'model'), P()), out_specs=P(),
                               check_vma=False))(*args)


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_class_split_cross_entropy_matches_optax(smoothing):
  logits = jax.random.normal(jax.random.key(0), (6, 16)) * 3
  labels = jnp.array([0, 3, 7, 8, 15, 4])
  mesh = _mesh(1, 8)

  def split_loss(logits_BK, labels_B):
    logp = step_lib.log_softmax(logits_BK, 'model')
    return step_lib.cross_entropy(logp, labels_B, num_classes=16, label_smoothing=smoothing,
                                  axis_name='model')
  got = _split_call(split_loss, mesh, logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, 16), smoothing)
  np.testing.assert_allclose(got, optax.softmax_cross_entropy(logits, targets), rtol=1e-5)


def test_class_split_topk_matches_full_topk():
  logits = jax.random.normal(jax.random.key(1), (64, 16))
  labels = jax.random.randint(jax.random.key(2), (64,), 0, 16)
  got1, got5 = _split_call(lambda l, y: step_lib.topk_correct(l, y, axis_name='model'),
                           _mesh(2, 4), logits, labels)
  top5 = jnp.argsort(-logits, axis=1)[:, :5]
  np.testing.assert_array_equal(got1, top5[:, 0] == labels)
  np.testing.assert_array_equal(got5, jnp.any(top5 == labels[:, None], axis=1))
  assert 0 < got5.sum() < 64 and got1.sum() < got5.sum()


@pytest.mark.parametrize('mesh_shape', [(1, 1), (4, 2)])
def test_eval_counts_real_examples_only(mesh_shape):
  model = AlexNet(num_classes=NUM_CLASSES, fc_width=64)
  mesh = _mesh(*mesh_shape)
  state, specs = step_lib.create_train_state(model, _paper_sgd(), mesh, image_size=SIZE, seed=0)
  evaluate = step_lib.make_eval_step(model, mesh, specs.params)
  batch = _batch()
  mask = np.arange(BATCH) < 11
  sums = evaluate(state.params, parallel.global_batch(
      mesh, dict(image=batch['image'], label=batch['label'], mask=mask)))
  assert int(sums['count']) == 11
  logits = model.apply({'params': jax.device_get(state.params)},
                       model_lib.standardize(batch['image'][:11]))
  want = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'][:11]).sum()
  np.testing.assert_allclose(float(sums['loss']), float(want), rtol=1e-4)


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize('mesh_shape', [(1, 1), (4, 2)])
def test_ten_crop_eval_averages_the_crops_probabilities(mesh_shape):
  """Ten different crops of each example: loss and top-k of the mean softmax, computed by hand."""
  model = AlexNet(num_classes=NUM_CLASSES, fc_width=64)
  mesh = _mesh(*mesh_shape)
  state, specs = step_lib.create_train_state(model, _paper_sgd(), mesh, image_size=SIZE, seed=0)
  params = jax.device_get(state.params)
  batch = _batch()
  noise = np.random.default_rng(2).normal(scale=40, size=(BATCH, 10, SIZE, SIZE, 3))
  images = np.clip(np.rint(batch['image'][:, None] + noise), 0, 255).astype(np.uint8)
  host_logits = lambda: np.asarray(model.apply(
      {'params': params}, model_lib.standardize(images.reshape(-1, SIZE, SIZE, 3))),
      np.float64).reshape(BATCH, 10, -1)
  # FC8 rescaled so that the logits lose their input-independent part and spread 3: crops then
  # disagree, and the mean of their probabilities is far from the softmax of their mean logits
  # or of one crop (checked at the end).
  mean = host_logits().mean((0, 1))
  scale = 3 / (host_logits() - mean).std()
  params['fc8'] = {'kernel': (params['fc8']['kernel'] * scale).astype(np.float32),
                   'bias': ((params['fc8']['bias'] - mean) * scale).astype(np.float32)}
  mask = np.arange(BATCH) < 11
  sums = step_lib.make_eval_step(model, mesh, specs.params)(
      parallel.host_to_mesh(params, mesh, specs.params),
      parallel.global_batch(mesh, dict(image=images, label=batch['label'], mask=mask)))
  logits, labels, rows = host_logits()[:11], batch['label'][:11], np.arange(11)
  probs = _softmax(logits).mean(1)
  loss = -np.log(probs[rows, labels]).sum()
  ranks = (probs > probs[rows, labels][:, None]).sum(1)  # classes ahead of the true one
  assert int(sums['count']) == 11
  np.testing.assert_allclose(float(sums['loss']), loss, rtol=1e-4)
  assert (float(sums['top1']), float(sums['top5'])) == ((ranks == 0).sum(), (ranks < 5).sum())
  for other in (_softmax(logits.mean(1)), _softmax(logits[:, 0])):  # what it must not be
    assert abs(-np.log(other[rows, labels]).sum() - loss) > 0.01 * loss


def test_ten_crop_loss_stays_finite_when_a_class_probability_underflows():
  """A confident model: the true class's probability is exp(-2e4) = 0 in float32 in every crop.

  The mean over crops is taken in log space, so the loss is the exact 2e4, not log(0) -> NaN.
  """
  model = AlexNet(num_classes=NUM_CLASSES, fc_width=64)
  mesh = _mesh(4, 2)
  state, specs = step_lib.create_train_state(model, _paper_sgd(), mesh, image_size=SIZE, seed=0)
  params = jax.device_get(state.params)
  params['fc8']['kernel'] = np.zeros_like(params['fc8']['kernel'])
  params['fc8']['bias'] = np.where(np.arange(NUM_CLASSES) == 0, 1e4, -1e4).astype(np.float32)
  params = parallel.host_to_mesh(params, mesh, specs.params)
  batch = _batch()
  crops = dict(image=np.repeat(batch['image'][:, None], 10, axis=1),
               label=np.ones(BATCH, np.int32), mask=np.ones(BATCH, bool))
  sums = step_lib.make_eval_step(model, mesh, specs.params)(
      params, parallel.global_batch(mesh, crops))
  np.testing.assert_allclose(float(sums['loss']) / BATCH, 2e4, rtol=1e-6)
  assert float(sums['top1']) == 0.0


def test_uint8_images_are_standardised_on_device_and_float_images_refused():
  images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
  lighting = np.array([[0.1, 0.0, -0.1], [0.0, 0.0, 0.0]], np.float32)
  got = model_lib.standardize(jnp.asarray(images), jnp.asarray(lighting))
  mean, std = np.array(model_lib.IMAGENET_MEAN_RGB), np.array(model_lib.IMAGENET_STD_RGB)
  want = (images / 255.0 + lighting[:, None, None, :] - mean) / std
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(TypeError, match='uint8 pixels, not float32'):  # not passed through as-is
    model_lib.standardize(jnp.asarray(want, jnp.float32))


@pytest.mark.parametrize('variant', ['paper', 'torchvision'])
def test_one_small_batch_is_overfitted(variant):
  # Adam and no dropout: memorising 8 examples tests the step, not the paper's slow SGD start.
  # At 3e-4 the paper variant's loss jumps back up around step 50: whether it ends below 10% of
  # the first depends on the pixels' last bits. At 1e-4 it falls steadily to under 1%.
  model = AlexNet(variant=variant, num_classes=NUM_CLASSES, fc_width=256, dropout_rate=0.0)
  mesh = _mesh(2, 2)
  tx = optax.adam(1e-4)
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=SIZE, seed=0)
  train = step_lib.make_train_step(model, tx, mesh, specs, seed=0)
  batch = parallel.global_batch(mesh, _batch(n=8))
  losses = []
  for _ in range(80):
    state, metrics = train(state, batch)
    losses.append(float(metrics['loss']))
  assert np.mean(losses[-5:]) < 0.1 * losses[0], losses[::10]
