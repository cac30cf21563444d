"""Pictures of what a network learned, as uint8 arrays: conv1's kernels as a grid (paper Figure 3).

Library code (train.py logs the grid to TensorBoard at each eval); tools/filters.py draws it as a
PNG.
"""
import numpy as np

COLUMNS = 16  # kernels per row, as in the paper's Figure 3 (3 rows of 16 per GPU)
GAP = 1  # pixels between tiles
GROUP_GAP = 4  # pixels between the groups' blocks


def _host(array) -> np.ndarray:
  """A (possibly multi-host, replicated) jax array or numpy array as numpy."""
  if hasattr(array, 'addressable_data'):
    return np.asarray(array.addressable_data(0))
  return np.asarray(array)


def tiles(kernel_HWIO) -> np.ndarray:
  """conv1 kernels [k, k, 3, F] -> F RGB tiles [F, k, k, 3] in [0, 1], each to its own range."""
  kernel = _host(kernel_HWIO).astype(np.float64)
  if kernel.ndim != 4 or kernel.shape[2] != 3:
    raise ValueError(f'conv1 kernel of shape {kernel.shape}: expected [k, k, 3, filters].')
  tiles_FHW3 = np.moveaxis(kernel, -1, 0)
  low = tiles_FHW3.min(axis=(1, 2, 3), keepdims=True)
  span = tiles_FHW3.max(axis=(1, 2, 3), keepdims=True) - low
  return np.where(span > 0, (tiles_FHW3 - low) / np.where(span > 0, span, 1), 0.5)


def grid_blocks(kernel_HWIO, groups: int = 1) -> list[np.ndarray]:
  """One uint8 image [H, W, 3] per group: its kernels in rows of COLUMNS tiles, white gaps."""
  tiles_FHW3 = tiles(kernel_HWIO)
  count, size = tiles_FHW3.shape[:2]
  if groups < 1 or count % groups:
    raise ValueError(f'{count} kernels do not split into {groups} groups.')
  per_group = count // groups
  columns = min(COLUMNS, per_group)
  rows = -(-per_group // columns)
  step = size + GAP
  blocks = []
  for g in range(groups):
    block = np.ones((rows * step - GAP, columns * step - GAP, 3))
    for i, tile in enumerate(tiles_FHW3[g * per_group:(g + 1) * per_group]):
      r, c = divmod(i, columns)
      block[r * step:r * step + size, c * step:c * step + size] = tile
    blocks.append(np.round(block * 255).astype(np.uint8))
  return blocks


def filter_grid(kernel_HWIO, groups: int = 1) -> np.ndarray:
  """All groups' blocks stacked top to bottom with a wider gap: one uint8 image [H, W, 3]."""
  blocks = grid_blocks(kernel_HWIO, groups)
  gap = np.full((GROUP_GAP,) + blocks[0].shape[1:], 255, np.uint8)
  parts = [part for block in blocks for part in (block, gap)][:-1]
  return np.concatenate(parts, axis=0)
