"""The slice-based max pool gives nn.max_pool's values and gradients, ties included."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import pooling


@pytest.mark.parametrize('size, window, stride', [(13, 3, 2), (55, 3, 2), (12, 2, 2), (7, 3, 2), (11, 3, 3), (8, 2, 1), (12, 5, 3)])
def test_values_and_gradients_match_flax(size, window, stride):
  x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))
  x = jnp.round(x * 2) / 2  # many ties: the gradient must go to the first maximum only
  cotangent = jax.random.normal(jax.random.key(1), pooling.max_pool(x, window, stride).shape)

  def ours(x):
    return jnp.sum(pooling.max_pool(x, window, stride) * cotangent)

  def flax_pool(x):
    return jnp.sum(nn.max_pool(x, (window, window), (stride, stride)) * cotangent)
  # Jitted, as the model runs them: one compile each instead of one per operation.
  pool = jax.jit(pooling.max_pool, static_argnums=(1, 2))
  np.testing.assert_array_equal(pool(x, window, stride),
                                nn.max_pool(x, (window, window), (stride, stride)))
  np.testing.assert_allclose(jax.jit(jax.grad(ours))(x), jax.jit(jax.grad(flax_pool))(x),
                             rtol=1e-6, atol=1e-6)
