"""Max pooling with a backward pass built from strided slices and pads (fast on XLA:CPU)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np


def _window_views(x_BHWC, window: int, stride: int):
  """The window**2 strided views of VALID pooling, x[:, i::stride, j::stride], row-major."""
  b, h, w, c = x_BHWC.shape
  oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
  return [jax.lax.slice(x_BHWC, (0, i, j, 0),
                        (b, i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1, c),
                        (1, stride, stride, 1)) for i in range(window) for j in range(window)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x_BHWC, window: int, stride: int):
  """VALID max pooling, the numbers of nn.max_pool.

  The gradient of each window goes to its first maximum in row-major order, as XLA's
  select-and-scatter does. XLA:CPU expands select-and-scatter into int32 index tensors, a
  variadic reduce-window and a scatter; slices and pads make the pool, and so the train step,
  faster (README 'Train-step speed against PyTorch').
  """
  return functools.reduce(jnp.maximum, _window_views(x_BHWC, window, stride))


def _max_pool_fwd(x_BHWC, window, stride):
  y_BHWC = max_pool(x_BHWC, window, stride)
  return y_BHWC, (x_BHWC, y_BHWC)


def scatter_views(views_BOPC, window: int, stride: int, height: int, width: int):
  """The adjoint of _window_views: sums window**2 output-sized arrays back onto the input grid.

  Input row stride * a + r takes view row i = r + stride * m at output row a - m. So each of the
  stride**2 phases (r, s) of the input is a sum of output-sized arrays shifted by (m, n), and the
  phases interleave into the input in one reshape. Everything stays output-sized: XLA:CPU fuses it
  into a few loops, where interior-padding each view to the input's size costs a full-size pass per
  view (9 for a 3x3 window).
  """
  b, oh, ow, c = views_BOPC[0].shape
  rows, cols = -(-height // stride), -(-width // stride)  # output-grid rows of each phase
  zero = jnp.zeros((), views_BOPC[0].dtype)
  phases = []
  for r in range(stride):
    row = []
    for s in range(stride):
      total = jnp.zeros((b, rows, cols, c), views_BOPC[0].dtype)
      for m in range((window - r + stride - 1) // stride):
        for n in range((window - s + stride - 1) // stride):
          view = views_BOPC[(r + stride * m) * window + s + stride * n]
          total = total + jax.lax.pad(view, zero, ((0, 0, 0), (m, rows - oh - m, 0),
                                                   (n, cols - ow - n, 0), (0, 0, 0)))
      row.append(total)
    phases.extend(row)
  grid = jnp.stack(phases, axis=3).reshape(b, rows, cols, stride, stride, c)
  grid = grid.transpose(0, 1, 3, 2, 4, 5)  # [B, rows, r, cols, s, C]
  return grid.reshape(b, rows * stride, cols * stride, c)[:, :height, :width]


def _max_pool_bwd(window, stride, residuals, dy_BHWC):
  x_BHWC, y_BHWC = residuals
  zero = jnp.zeros((), x_BHWC.dtype)
  taken, grads = jnp.zeros(y_BHWC.shape, bool), []
  for view in _window_views(x_BHWC, window, stride):
    first = (view == y_BHWC) & ~taken  # ties: the first maximum only
    taken = taken | first
    grads.append(jnp.where(first, dy_BHWC, zero))
  return (scatter_views(grads, window, stride, *x_BHWC.shape[1:3]),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def ceil_padding(size: int, window: int, stride: int) -> int:
  """Pixels to add past the edge so that 1 + ceil((size - window) / stride) windows fit."""
  return -(-(size - window) // stride) * stride + window - size


def avg_pool(x_BHWC, window: int, stride: int, padding=(0, 0)):
  """Average pooling over the pixels of each window inside the image (padding: past the bottom and
  right edges, not counted), as cuda-convnet's; a sum of strided slices, whose gradient is pads."""
  pad_h, pad_w = padding
  padded = jnp.pad(x_BHWC, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
  sums = functools.reduce(jnp.add, _window_views(padded, window, stride))
  h, w = x_BHWC.shape[1:3]
  counts = [np.minimum(np.arange(0, n + pad - window + 1, stride) + window, n)
            - np.arange(0, n + pad - window + 1, stride) for n, pad in ((h, pad_h), (w, pad_w))]
  return sums / jnp.asarray(np.outer(*counts)[None, :, :, None], x_BHWC.dtype)
