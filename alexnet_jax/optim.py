"""The optax optimizer and learning-rate schedule, built from config.optimizer."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from alexnet_jax import errors

SCHEDULES = ('step', 'cosine', 'constant', 'plateau')
PLATEAU_METRICS = ('loss', 'top1')


def make_schedule(opt_config, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """'step' (the paper's divide-by-10), 'cosine' or 'constant', after an optional linear warm-up.

  'plateau' is 'constant' here: its divisions come from the evaluations (PlateauState).
  """
  lr, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == 'step':
    every = max(1, round(opt_config.decay_every_epochs * steps_per_epoch))
    boundaries = {b - warmup: opt_config.decay_factor
                  for b in range(every, total_steps, every) if b > warmup}
    main = optax.piecewise_constant_schedule(lr, boundaries)
  elif opt_config.schedule == 'cosine':
    main = optax.cosine_decay_schedule(lr, max(1, total_steps - warmup))
  elif opt_config.schedule in ('constant', 'plateau'):
    main = optax.constant_schedule(lr)
  else:
    raise errors.ConfigError(f'optimizer.schedule={opt_config.schedule!r} is unknown; use one of '
                     f'{list(SCHEDULES)}.')
  if warmup <= 0:
    return main
  ramp = optax.linear_schedule(lr / max(warmup, 1), lr, warmup)
  return optax.join_schedules([ramp, main], [warmup])


LAYERS = ('conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8')
TRAINABLE_PRESETS = {'all': LAYERS, 'classifier': ('fc6', 'fc7', 'fc8'), 'fc8': ('fc8',)}


def trainable_layers(trainable: str) -> tuple[str, ...]:
  """optimizer.trainable -> layer names: 'all', 'classifier', 'fc8' or a list like 'conv5,fc6'."""
  if trainable in TRAINABLE_PRESETS:
    return TRAINABLE_PRESETS[trainable]
  layers = tuple(name.strip() for name in trainable.split(',') if name.strip())
  unknown = [name for name in layers if name not in LAYERS]
  if unknown or not layers:
    raise errors.ConfigError(f'optimizer.trainable={trainable!r}: use one of {sorted(TRAINABLE_PRESETS)} '
                     f'or comma-separated layers of {list(LAYERS)}.')
  return layers


class PlateauState(NamedTuple):
  """The paper's rule (section 5): the learning rate is divided by decay_factor when the eval
  metric has not improved for `patience` evaluations, at most max_decays times.

  It lives in the optimizer state, so a checkpoint holds it and a resume continues it exactly.
  best is in 'lower is better' form (the loss, or minus top-1)."""
  scale: jax.Array  # the factor on the schedule's learning rate
  best: jax.Array
  waited: jax.Array  # evaluations since the best one
  decays: jax.Array


def scale_by_plateau() -> optax.GradientTransformation:
  """Multiplies the updates by PlateauState.scale; observe_eval changes the scale."""
  def init(params):
    del params
    return PlateauState(scale=jnp.ones((), jnp.float32), best=jnp.full((), jnp.inf, jnp.float32),
                        waited=jnp.zeros((), jnp.int32), decays=jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: u * state.scale.astype(u.dtype), updates), state

  return optax.GradientTransformation(init, update)


def _is_plateau(x) -> bool:
  return isinstance(x, PlateauState)


@jax.jit
def _observe(state: PlateauState, value, factor, patience, max_decays) -> PlateauState:
  improved = value < state.best
  waited = jnp.where(improved, 0, state.waited + 1)
  decay = (waited >= patience) & (state.decays < max_decays)
  return PlateauState(scale=jnp.where(decay, state.scale * factor, state.scale),
                      best=jnp.minimum(value, state.best),
                      waited=jnp.where(decay, 0, waited),
                      decays=state.decays + decay.astype(jnp.int32))


def observe_eval(opt_state, eval_metrics: dict, opt_config):
  """opt_state after an evaluation: the plateau rule's state updated (a no-op without it)."""
  if opt_config.schedule != 'plateau':
    return opt_state
  metric = opt_config.plateau_metric
  value = eval_metrics[metric] * (-1.0 if metric == 'top1' else 1.0)
  return jax.tree.map(
      lambda x: _observe(x, jnp.float32(value), jnp.float32(opt_config.decay_factor),
                         jnp.int32(opt_config.patience), jnp.int32(opt_config.max_decays))
      if _is_plateau(x) else x, opt_state, is_leaf=_is_plateau)


def plateau_scale(opt_state) -> float:
  """The plateau rule's factor on the learning rate (1.0 without the rule)."""
  found = [x for x in jax.tree.leaves(opt_state, is_leaf=_is_plateau) if _is_plateau(x)]
  return float(jax.device_get(found[0].scale.addressable_data(0))) if found else 1.0


def check(opt_config, *, eval_every_steps: int) -> None:
  """Raises ValueError naming the key to change when the optimizer keys do not fit together."""
  if opt_config.schedule == 'plateau':
    if eval_every_steps <= 0:
      raise errors.ConfigError("optimizer.schedule='plateau' divides the learning rate at evaluations; "
                       'set --config.eval_every_steps to a positive number of steps.')
    if opt_config.plateau_metric not in PLATEAU_METRICS:
      raise errors.ConfigError(f'optimizer.plateau_metric={opt_config.plateau_metric!r} is unknown; use '
                       f'one of {list(PLATEAU_METRICS)}.')
    if opt_config.patience < 1:
      raise errors.ConfigError(f'optimizer.patience={opt_config.patience}: use at least 1 evaluation.')
    if not 0.0 < opt_config.decay_factor < 1.0 or opt_config.max_decays < 0:
      raise errors.ConfigError(f'optimizer.decay_factor={opt_config.decay_factor} and max_decays='
                       f'{opt_config.max_decays}: the rule multiplies the rate by a factor in (0, 1), '
                       'at most max_decays >= 0 times (the paper: 0.1, 3).')
  ema_decay = opt_config.get('ema_decay', 0.0)
  if not 0.0 <= ema_decay < 1.0:
    raise errors.ConfigError(f'optimizer.ema_decay={ema_decay} is out of range; use 0 (off) or a decay '
                     'in (0, 1) such as 0.999.')
  if opt_config.get('accumulate_steps', 1) < 1:
    raise errors.ConfigError(f'optimizer.accumulate_steps={opt_config.accumulate_steps}: use 1 (off) or '
                     'more micro-batches per step.')


def make_optimizer(opt_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """The optimizer, applied to the optimizer.trainable layers only (the others are frozen)."""
  tx = _base_optimizer(opt_config, schedule)
  layers = trainable_layers(opt_config.get('trainable', 'all'))
  if layers == LAYERS:
    return tx
  # Frozen layers get a zero update: no gradient step, no weight decay, no optimizer slots.
  labels = lambda params: {layer: jax.tree.map(lambda _, t=layer in layers: 'train' if t else
                                               'frozen', tree) for layer, tree in params.items()}
  return optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()}, labels)


def _base_optimizer(opt_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """'sgd' is the paper's rule v <- m v - wd lr w - lr g, w <- w + v; or 'adamw'."""
  if opt_config.name == 'sgd':
    # The learning rate scales the step before the momentum sums it, as in the paper (and
    # cuda-convnet): a decay of the rate acts on new gradients only.
    plateau = [scale_by_plateau()] if opt_config.schedule == 'plateau' else []
    return optax.chain(optax.add_decayed_weights(opt_config.weight_decay),
                       optax.scale_by_learning_rate(schedule), *plateau,
                       optax.trace(decay=opt_config.momentum))
  if opt_config.name == 'adamw':
    plateau = [scale_by_plateau()] if opt_config.schedule == 'plateau' else []
    return optax.chain(optax.adamw(schedule, weight_decay=opt_config.weight_decay), *plateau)
  raise errors.ConfigError(f"optimizer.name={opt_config.name!r} is unknown; use 'sgd' or 'adamw'.")
