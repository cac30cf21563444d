"""Exact checksums of a TrainState (the same on any mesh) and the finiteness check: jitted, pure."""
import jax
import jax.numpy as jnp
import numpy as np


def _leaf_sum(x):
  """Sum of the bits of x mod 2**32: integer adds are associative, so any mesh gives the same."""
  unsigned = {1: jnp.uint8, 2: jnp.uint16}.get(x.dtype.itemsize, jnp.uint32)
  bits = x.astype(jnp.uint8) if x.dtype == jnp.bool_ else jax.lax.bitcast_convert_type(x, unsigned)
  return jnp.sum(bits.astype(jnp.uint32), dtype=jnp.uint32)


@jax.jit
def _sums(fields: dict) -> dict:
  return {name: sum((jnp.uint32(2 * i + 1) * _leaf_sum(jnp.asarray(x))
                     for i, x in enumerate(jax.tree.leaves(tree))), jnp.uint32(0))
          for name, tree in fields.items()}


@jax.jit
def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.inexact)] + [jnp.bool_(True)]))


def host_value(x):
  return np.asarray(x.addressable_data(0))  # replicated: every process holds the value


def of_state(state) -> dict:
  """{'step', 'params', 'opt_state'[, 'ema_params']} -> exact uint32 checksum of each (the same on
  any mesh); 'ema_params' only where the state keeps the moving average."""
  fields = {'step': state.step, 'params': state.params, 'opt_state': state.opt_state}
  if getattr(state, 'ema_params', None) is not None:
    fields['ema_params'] = state.ema_params
  return {k: int(host_value(v)) for k, v in _sums(fields).items()}


def all_finite(tree) -> bool:
  return bool(host_value(_all_finite(tree)))


def of_params(params, name: str = 'params') -> int:
  """The checksum of a parameter tree, as of_state(state)[name] computes it."""
  return int(host_value(_sums({name: params})[name]))
