"""pictures.filter_grid, tools.filters: per-kernel scaling, groups as blocks, PNG, TensorBoard."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import checkpoint
from alexnet_jax import pictures
from conftest import error_line
from conftest import run_modules


def test_each_tile_is_scaled_to_its_own_range():
  kernel = np.random.default_rng(0).normal(size=(11, 11, 3, 4)) * np.array([1e-3, 1.0, 50.0, 0.0])
  tiles = pictures.tiles(kernel)
  assert tiles.shape == (4, 11, 11, 3)
  for f in range(3):
    assert tiles[f].min() == 0.0 and tiles[f].max() == 1.0
    np.testing.assert_allclose(tiles[f], (kernel[..., f] - kernel[..., f].min()) /
                               np.ptp(kernel[..., f]))
  assert np.all(tiles[3] == 0.5)  # a constant kernel is mid-grey, not a division by zero


def test_two_groups_are_two_blocks_of_their_own_kernels():
  kernel = np.random.default_rng(1).normal(size=(11, 11, 3, 96))
  blocks = pictures.grid_blocks(kernel, groups=2)
  assert [b.shape for b in blocks] == [(3 * 12 - 1, 16 * 12 - 1, 3)] * 2  # 3 rows of 16 (paper)
  tiles = np.round(pictures.tiles(kernel) * 255).astype(np.uint8)
  np.testing.assert_array_equal(blocks[0][:11, :11], tiles[0])
  np.testing.assert_array_equal(blocks[0][12:23, 24:35], tiles[18])  # row 1, column 2
  np.testing.assert_array_equal(blocks[1][24:35, 180:191], tiles[95])  # group 2's last kernel
  grid = pictures.filter_grid(kernel, groups=2)
  assert grid.shape == (2 * 35 + pictures.GROUP_GAP, 191, 3)
  np.testing.assert_array_equal(grid[35 + pictures.GROUP_GAP:], blocks[1])
  with pytest.raises(ValueError, match='do not split into 2 groups'):
    pictures.grid_blocks(kernel[..., :5], groups=2)


def _runs(flags):
  """(start, stop) of each run of True values."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
  return list(zip(edges[::2], edges[1::2]))


def _drawn_tiles(image, size):
  """([tiles, size, size, 3] read at the centre of each tap, rows of tiles as (top, bottom)) of a
  picture of tiles: rows and columns mostly not white, between white gaps and titles."""
  ink = np.any(image < 255, axis=-1)
  taps = (np.arange(size) + 0.5) / size
  centres = lambda start, stop: (start + taps * (stop - start)).astype(int)
  rows = _runs(ink.mean(axis=1) > 0.5)
  tiles = [image[np.ix_(centres(top, bottom), centres(left, right))] for top, bottom in rows
           for left, right in _runs(ink[top:bottom].mean(axis=0) > 0.5)]
  return np.array(tiles), rows


def test_filters_png_and_the_tensorboard_image_at_each_eval(trained_run, tmp_path):
  workdir, _ = trained_run
  output = str(tmp_path / 'filters.png')
  (tmp_path / 'a_file').write_text('')
  result, step_5, jpeg, unwritable = run_modules(
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', '--step=6', f'--output={output}'),
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', '--step=5',
       f'--output={tmp_path / "step_5.png"}'),  # not `output`: that one is being written
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', f'--output={tmp_path / "f.jpg"}'),
      ('alexnet_jax.tools.filters', f'--workdir={workdir}',
       f'--output={tmp_path / "a_file" / "f.png"}'))  # a folder that is a file
  assert result.returncode == 0, result.stderr[-3000:]
  # The output convention (cli.py): stdout holds results only, the `wrote` line goes to stderr.
  assert not result.stdout and f'wrote {output}: 96 kernels, step 6, 2 group(s)' in result.stderr
  # Read back from the picture: every kernel's tile holds its colours exactly, in order, group
  # 1's 3 rows of 16 above group 2's, the groups apart by more than their rows are.
  params, _, _ = checkpoint.load_params(workdir, 6)
  tiles, rows = _drawn_tiles(np.asarray(Image.open(output).convert('RGB')), 11)
  np.testing.assert_array_equal(
      tiles, np.round(pictures.tiles(params['conv1']['kernel']) * 255).astype(np.uint8))
  gaps = [top - bottom for (_, bottom), (top, _) in zip(rows, rows[1:])]
  assert len(rows) == 6 and gaps[2] > 3 * max(gaps[:2] + gaps[3:])
  # TensorBoard holds the grid of the run's parameters at each eval (steps 3 and 6).
  logged = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'conv1/filters':
          logged[event.step] = tf.io.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
  assert sorted(logged) == [3, 6]
  np.testing.assert_array_equal(logged[6], pictures.filter_grid(params['conv1']['kernel'], 2))
  assert 'no checkpoint of step 5' in error_line(step_5)
  assert 'give a .png file name' in error_line(jpeg)
  assert 'cannot write' in error_line(unwritable)
