"""Optimizer and schedules: the paper's update rule, step decay, warm-up, cosine."""
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import optim
from configs import default


def _opt(**overrides):
  config = default.get_config().optimizer
  config.update(overrides)
  return config


def test_step_schedule_divides_by_ten_at_each_boundary():
  schedule = optim.make_schedule(_opt(decay_every_epochs=2.0), steps_per_epoch=10, total_steps=70)
  got = [float(schedule(s)) for s in (0, 19, 20, 39, 40, 60, 69)]
  np.testing.assert_allclose(got, [0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-5, 1e-5], rtol=1e-6)


def test_step_schedule_after_warmup_divides_at_the_same_epochs():
  """The ramp to the base rate does not move the decays: still at steps 10, 20 and 30."""
  schedule = optim.make_schedule(_opt(decay_every_epochs=1.0, warmup_steps=5), steps_per_epoch=10,
                                 total_steps=40)
  got = [float(schedule(s)) for s in (0, 4, 5, 9, 10, 19, 20, 29, 30, 39)]
  np.testing.assert_allclose(got, [0.002, 0.002 + 0.008 * 4 / 5, 0.01, 0.01, 1e-3, 1e-3, 1e-4,
                                   1e-4, 1e-5, 1e-5], rtol=1e-5)


def test_constant_schedule_with_and_without_warmup():
  constant = optim.make_schedule(_opt(schedule='constant'), steps_per_epoch=10, total_steps=100)
  np.testing.assert_allclose([float(constant(s)) for s in (0, 50, 99)], [0.01] * 3, rtol=1e-6)
  warm = optim.make_schedule(_opt(schedule='constant', warmup_steps=4), steps_per_epoch=10,
                             total_steps=100)
  np.testing.assert_allclose([float(warm(s)) for s in (0, 2, 4, 99)],
                             [0.0025, 0.0025 + 0.0075 / 2, 0.01, 0.01], rtol=1e-5)


def test_adamw_is_adam_with_decoupled_weight_decay_at_the_scheduled_rate():
  """w <- w - lr (m_hat / (sqrt(v_hat) + eps) + wd w), lr from the schedule at each step."""
  config = _opt(name='adamw', weight_decay=0.1, decay_every_epochs=1.0)
  schedule = optim.make_schedule(config, steps_per_epoch=2, total_steps=10)
  tx = optim.make_optimizer(config, schedule)
  params = {'w': jnp.array([1.0, -2.0, 0.5])}
  state = tx.init(params)
  w, m, v = np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3)
  grads = [np.array([0.5, 0.1, -1e-3]), np.array([-0.3, 0.2, 2.0]), np.array([0.7, -0.4, 0.0])]
  for step, g in enumerate(grads, 1):
    lr = 0.01 * (0.1 if step > 2 else 1.0)
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    m_hat, v_hat = m / (1 - 0.9 ** step), v / (1 - 0.999 ** step)
    w = w - lr * (m_hat / (np.sqrt(v_hat) + 1e-8) + 0.1 * w)
    updates, state = tx.update({'w': jnp.asarray(g, jnp.float32)}, state, params)
    params = {'w': params['w'] + updates['w']}
  np.testing.assert_allclose(params['w'], w, rtol=1e-5)


def test_warmup_is_linear_then_the_schedule_starts():
  schedule = optim.make_schedule(_opt(schedule='cosine', warmup_steps=10), steps_per_epoch=10,
                                 total_steps=110)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, 4, 10)], [0.001, 0.001 + 0.009 * 4 / 10, 0.01],
                             rtol=1e-5)
  assert float(schedule(60)) == pytest.approx(0.005, rel=1e-3)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)


def test_sgd_is_the_papers_update_rule_across_a_learning_rate_change():
  """v <- 0.9 v - 5e-4 lr w - lr g;  w <- w + v, with lr from the schedule at each step."""
  config = _opt(decay_every_epochs=1.0)
  schedule = optim.make_schedule(config, steps_per_epoch=2, total_steps=10)
  tx = optim.make_optimizer(config, schedule)
  w = {'w': jnp.array([1.0, -2.0])}
  grads = [jnp.array([0.5, 0.1]), jnp.array([-0.3, 0.2]), jnp.array([0.7, -0.4])]
  state, params = tx.init(w), w
  v, w_ref = np.zeros(2), np.array([1.0, -2.0])
  for step, g in enumerate(grads):
    lr = 0.01 * (0.1 if step >= 2 else 1.0)
    v = 0.9 * v - 5e-4 * lr * w_ref - lr * np.asarray(g)
    w_ref = w_ref + v
    updates, state = tx.update({'w': g}, state, params)
    params = {'w': params['w'] + updates['w']}
  np.testing.assert_allclose(params['w'], w_ref, rtol=1e-6)


def test_unknown_names_are_rejected_with_the_key():
  with pytest.raises(ValueError, match='optimizer.schedule'):
    optim.make_schedule(_opt(schedule='linear'), steps_per_epoch=1, total_steps=1)
  with pytest.raises(ValueError, match='optimizer.name'):
    optim.make_optimizer(_opt(name='lamb'), lambda s: 0.1)


def test_frozen_layers_get_no_update_and_no_weight_decay():
  import jax  # pylint: disable=g-import-not-at-top
  params = {name: {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)} for name in optim.LAYERS}
  grads = jax.tree.map(jnp.ones_like, params)
  tx = optim.make_optimizer(_opt(trainable='conv5,fc8', weight_decay=0.1), lambda _: 0.5)
  state = tx.init(params)
  for _ in range(2):
    updates, state = tx.update(grads, state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  for name in optim.LAYERS:
    changed = not np.array_equal(params[name]['kernel'], np.ones((2, 2)))
    assert changed == (name in ('conv5', 'fc8')), name
  slots = [leaf for leaf in jax.tree.leaves(state) if getattr(leaf, 'shape', ()) == (2, 2)]
  assert len(slots) == 2  # momentum for the two trained kernels only


def test_trainable_presets_and_bad_names():
  assert optim.trainable_layers('classifier') == ('fc6', 'fc7', 'fc8')
  assert optim.trainable_layers('all') == optim.LAYERS
  with pytest.raises(ValueError, match="optimizer.trainable='fc9'"):
    optim.trainable_layers('fc9')
