"""TrainState, the loss, and the per-device train and eval steps with their shard_map + jit wrappers.

Inside shard_map each device holds b = B / (D * M) examples. The conv trunk runs on those; the
classifier gathers the B / D examples of its 'data' group and holds K / M of the classes, so the
loss and top-k below work on class-split logits without gathering them.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from alexnet_jax import model as model_lib
from alexnet_jax import parallel
from alexnet_jax.parallel import BATCH_AXES, DATA_AXIS, MODEL_AXIS


@dataclasses.dataclass(frozen=True)
class TrainState:
  """The step, the parameters, the optimizer's state and, with optimizer.ema_decay > 0, an
  exponential moving average of the parameters. Without the average the pytree (and so a
  checkpoint) has no ema_params entry at all: runs from before it resume as they were saved."""
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  ema_params: dict | None = None

  def replace(self, **changes) -> 'TrainState':
    return dataclasses.replace(self, **changes)


def _fields(state: TrainState) -> tuple[str, ...]:
  return ('step', 'params', 'opt_state') + (() if state.ema_params is None else ('ema_params',))


jax.tree_util.register_pytree_with_keys(
    TrainState,
    lambda state: ([(jax.tree_util.GetAttrKey(n), getattr(state, n)) for n in _fields(state)],
                   state.ema_params is not None),
    lambda has_ema, children: TrainState(*children),
    flatten_func=lambda state: ([getattr(state, n) for n in _fields(state)],
                                state.ema_params is not None))


def log_softmax(logits_BK, axis_name=None):
  """log-softmax over classes that may be split over axis_name."""
  top_B1 = jax.lax.stop_gradient(jnp.max(logits_BK, axis=-1, keepdims=True))  # a shift only
  if axis_name is not None:
    top_B1 = jax.lax.pmax(top_B1, axis_name)
  shifted_BK = logits_BK - top_B1
  total_B1 = jnp.sum(jnp.exp(shifted_BK), axis=-1, keepdims=True)
  if axis_name is not None:
    total_B1 = jax.lax.psum(total_B1, axis_name)
  return shifted_BK - jnp.log(total_B1)


def _class_offset(logits_BK, axis_name):
  return 0 if axis_name is None else jax.lax.axis_index(axis_name) * logits_BK.shape[-1]


def cross_entropy(logprobs_BK, labels_B, *, num_classes, label_smoothing=0.0, axis_name=None):
  """Per-example cross-entropy [B] from (class-split) log-probabilities."""
  local = jax.nn.one_hot(labels_B - _class_offset(logprobs_BK, axis_name), logprobs_BK.shape[-1])
  picked_B = jnp.sum(local * logprobs_BK, axis=-1)
  total_B = jnp.sum(logprobs_BK, axis=-1)
  if axis_name is not None:
    picked_B, total_B = jax.lax.psum((picked_B, total_B), axis_name)
  return -((1.0 - label_smoothing) * picked_B + label_smoothing / num_classes * total_B)


def topk_correct(scores_BK, labels_B, k=5, axis_name=None):
  """(top-1 correct [B], top-k correct [B]) from (class-split) scores; gathers M*k candidates."""
  k_local = min(k, scores_BK.shape[-1])
  values_Bk, index_Bk = jax.lax.top_k(scores_BK, k_local)
  index_Bk = index_Bk + _class_offset(scores_BK, axis_name)
  if axis_name is not None:
    values_Bk = jax.lax.all_gather(values_Bk, axis_name, axis=1, tiled=True, to='invarying')
    index_Bk = jax.lax.all_gather(index_Bk, axis_name, axis=1, tiled=True, to='invarying')
  _, best = jax.lax.top_k(values_Bk, min(k, values_Bk.shape[-1]))
  top_Bk = jnp.take_along_axis(index_Bk, best, axis=1)
  hits_Bk = top_Bk == labels_B[:, None]
  return hits_Bk[:, 0].astype(jnp.float32), jnp.any(hits_Bk, axis=1).astype(jnp.float32)


def _device_example_ids(local_batch: int):
  """Global indices of this device's examples (batch split over ('data', 'model'))."""
  position = jax.lax.axis_index(DATA_AXIS) * jax.lax.axis_size(MODEL_AXIS)
  position = position + jax.lax.axis_index(MODEL_AXIS)
  return position * local_batch + jnp.arange(local_batch)


def train_step(state, batch, *, model, tx, seed, label_smoothing, accumulate_steps=1,
               ema_decay=0.0):
  """One SGD step on this device's shard; returns the new state and global-mean metrics.

  accumulate_steps=K: the device's examples run as K micro-batches, one after the other, whose
  gradients are averaged before the one update: the full batch's update (each micro-batch's
  examples keep their global ids, and so their dropout masks) with a K-th of its activations.
  """
  images_bHWC = model_lib.standardize(batch['image'], batch.get('lighting'))
  labels_b = batch['label']
  ids_b = _device_example_ids(labels_b.shape[0])
  dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)

  def loss_fn(params, images_mHWC, labels_m, ids_m):
    labels_M = jax.lax.all_gather(labels_m, MODEL_AXIS, tiled=True, to='invarying')  # the classifier's group
    logits_MK = model.apply({'params': params}, images_mHWC, train=True, example_ids_B=ids_m,
                            rngs={'dropout': dropout_key})
    logprobs_MK = log_softmax(logits_MK, MODEL_AXIS)
    losses_M = cross_entropy(logprobs_MK, labels_M, num_classes=model.num_classes,
                             label_smoothing=label_smoothing, axis_name=MODEL_AXIS)
    top1_M, top5_M = topk_correct(jax.lax.stop_gradient(logits_MK), labels_M, axis_name=MODEL_AXIS)
    # The global mean; its gradient is then the one-device gradient (DESIGN.md's trap).
    return jax.lax.pmean(jnp.mean(losses_M), DATA_AXIS), (top1_M, top5_M)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if accumulate_steps == 1:
    (loss, (top1_B, top5_B)), grads = grad_fn(state.params, images_bHWC, labels_b, ids_b)
  else:
    micro = lambda x: x.reshape((accumulate_steps, -1) + x.shape[1:])

    def add_micro_batch(total, inputs):
      (loss, tops), grads = grad_fn(state.params, *inputs)
      return jax.tree.map(jnp.add, total, grads), (loss, tops)

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    grads, (losses, (top1_KM, top5_KM)) = jax.lax.scan(
        add_micro_batch, zeros, (micro(images_bHWC), micro(labels_b), micro(ids_b)))
    grads = jax.tree.map(lambda g: g / accumulate_steps, grads)
    loss, top1_B, top5_B = jnp.mean(losses), top1_KM.reshape(-1), top5_KM.reshape(-1)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema_params = state.ema_params
  if ema_params is not None:
    ema_params = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema_params, params)
  metrics = {'loss': loss, 'top1': jax.lax.pmean(jnp.mean(top1_B), DATA_AXIS),
             'top5': jax.lax.pmean(jnp.mean(top5_B), DATA_AXIS)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       ema_params=ema_params), metrics


def eval_logprobs(params, batch, *, model):
  """Log-probabilities [B, K/M] of the 'data' group's examples: the softmax averaged over crops."""
  images = model_lib.standardize(batch['image'])
  crops = images.shape[1] if images.ndim == 5 else 1
  images_bHWC = images.reshape((-1,) + images.shape[-3:])
  logits_BK = model.apply({'params': params}, images_bHWC, train=False)
  logprobs_BCK = log_softmax(logits_BK, MODEL_AXIS).reshape(-1, crops, logits_BK.shape[-1])
  # log of the mean probability over crops, in log space: a class whose probability underflows
  # in every crop keeps a finite log-probability (log(0) = -inf would make the loss NaN).
  return jax.nn.logsumexp(logprobs_BCK, axis=1) - jnp.log(crops)


def eval_step(params, batch, *, model):
  """Sums over this batch's real examples: loss, top1, top5, count (softmax averaged over crops)."""
  labels_b, mask_b = batch['label'], batch['mask']
  logprobs_BK = eval_logprobs(params, batch, model=model)
  labels_B = jax.lax.all_gather(labels_b, MODEL_AXIS, tiled=True, to='invarying')
  mask_B = jax.lax.all_gather(mask_b, MODEL_AXIS, tiled=True, to='invarying').astype(jnp.float32)
  losses_B = cross_entropy(logprobs_BK, labels_B, num_classes=model.num_classes,
                           axis_name=MODEL_AXIS)
  top1_B, top5_B = topk_correct(logprobs_BK, labels_B, axis_name=MODEL_AXIS)
  sums = {'loss': losses_B * mask_B, 'top1': top1_B * mask_B, 'top5': top5_B * mask_B,
          'count': mask_B}
  return {k: jax.lax.psum(jnp.sum(v), DATA_AXIS) for k, v in sums.items()}


def state_specs(state: TrainState) -> TrainState:
  """PartitionSpecs of a TrainState: parameters and the optimizer slots that mirror them alike.

  An optimizer slot's path ends with its parameter's (layer, name), as optax's states do; frozen
  layers (optimizer.trainable) have no slots, and scalars such as counts are replicated.
  """
  ema = None if state.ema_params is None else parallel.param_specs(state.ema_params)
  return TrainState(step=P(), params=parallel.param_specs(state.params),
                    opt_state=parallel.param_specs(state.opt_state), ema_params=ema)


def _state_init(model, tx, image_size: int, seed: int, ema: bool):
  def init():
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    params = model.init(jax.random.key(seed), images)['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      ema_params=jax.tree.map(jnp.copy, params) if ema else None)
  return init


def abstract_train_state(model, tx, mesh, *, image_size: int, seed: int, ema: bool = False):
  """(the TrainState as ShapeDtypeStructs placed on the mesh, its PartitionSpecs); nothing runs."""
  shapes = jax.eval_shape(_state_init(model, tx, image_size, seed, ema))
  specs = state_specs(shapes)
  state = jax.tree.map(lambda x, where: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=where),
                       shapes, parallel.to_shardings(mesh, specs))
  return state, specs


def create_train_state(model, tx, mesh, *, image_size: int, seed: int, ema: bool = False):
  """Initialises params and optimizer state directly into their shardings on the mesh; ema: the
  state holds a moving average of the parameters, started at the initial ones."""
  init = _state_init(model, tx, image_size, seed, ema)
  specs = state_specs(jax.eval_shape(init))
  state = jax.jit(init, out_shardings=parallel.to_shardings(mesh, specs))()
  return state, specs


def _sharded_model(model, mesh):
  return model.clone(model_axis=MODEL_AXIS, model_shards=mesh.shape[MODEL_AXIS])


def make_train_step(model, tx, mesh, specs, *, seed: int, label_smoothing: float = 0.0,
                    accumulate_steps: int = 1, ema_decay: float = 0.0):
  """jit(shard_map(train_step)): (state, batch) -> (state, metrics); the state is donated."""
  body = functools.partial(train_step, model=_sharded_model(model, mesh), tx=tx, seed=seed,
                           label_smoothing=label_smoothing, accumulate_steps=accumulate_steps,
                           ema_decay=ema_decay)
  # Every batch field (image, label, lighting) is split over all devices along its first axis.
  step = jax.shard_map(body, mesh=mesh, in_specs=(specs, P(BATCH_AXES)), out_specs=(specs, P()))
  return jax.jit(step, donate_argnums=0)


def make_logprobs_step(model, mesh, param_specs):
  """jit(shard_map(eval_logprobs)): (params, batch) -> log-probabilities [B, K] in batch order
  (an ensemble's members are combined from them)."""
  body = functools.partial(eval_logprobs, model=_sharded_model(model, mesh))
  return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(param_specs, P(BATCH_AXES)),
                               out_specs=P(DATA_AXIS, MODEL_AXIS)))


def make_eval_step(model, mesh, param_specs):
  """jit(shard_map(eval_step)): (params, batch) -> sums of loss, top1, top5 and count."""
  body = functools.partial(eval_step, model=_sharded_model(model, mesh))
  return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(param_specs, P(BATCH_AXES)),
                               out_specs=P()))
