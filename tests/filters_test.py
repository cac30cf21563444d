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
  image = np.asarray(Image.open(output).convert('RGB'))
  assert image.shape[1] >= 16 * 12 * 6 and image.shape[0] > 2 * 35 * 6  # 6 px per kernel tap
  assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # kernels, not a blank canvas
  # TensorBoard holds the grid of the run's parameters at each eval (steps 3 and 6).
  logged = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'conv1/filters':
          logged[event.step] = tf.io.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
  assert sorted(logged) == [3, 6]
  params, _, _ = checkpoint.load_params(workdir, 6)
  np.testing.assert_array_equal(logged[6], pictures.filter_grid(params['conv1']['kernel'], 2))
  assert 'no checkpoint of step 5' in error_line(step_5)
  assert 'give a .png file name' in error_line(jpeg)
  assert 'cannot write' in error_line(unwritable)
