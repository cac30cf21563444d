"""The optax optimizer and learning-rate schedule, built from config.optimizer."""
import jax
import optax


def make_schedule(opt_config, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """'step' (the paper's divide-by-10), 'cosine' or 'constant', after an optional linear warm-up."""
  lr, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == 'step':
    every = max(1, round(opt_config.decay_every_epochs * steps_per_epoch))
    boundaries = {b - warmup: opt_config.decay_factor
                  for b in range(every, total_steps, every) if b > warmup}
    main = optax.piecewise_constant_schedule(lr, boundaries)
  elif opt_config.schedule == 'cosine':
    main = optax.cosine_decay_schedule(lr, max(1, total_steps - warmup))
  elif opt_config.schedule == 'constant':
    main = optax.constant_schedule(lr)
  else:
    raise ValueError(f"optimizer.schedule={opt_config.schedule!r} is unknown; use 'step', "
                     "'cosine' or 'constant'.")
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
    raise ValueError(f'optimizer.trainable={trainable!r}: use one of {sorted(TRAINABLE_PRESETS)} '
                     f'or comma-separated layers of {list(LAYERS)}.')
  return layers


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
    return optax.chain(optax.add_decayed_weights(opt_config.weight_decay),
                       optax.scale_by_learning_rate(schedule),
                       optax.trace(decay=opt_config.momentum))
  if opt_config.name == 'adamw':
    return optax.adamw(schedule, weight_decay=opt_config.weight_decay)
  raise ValueError(f"optimizer.name={opt_config.name!r} is unknown; use 'sgd' or 'adamw'.")
