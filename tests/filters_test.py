"""pictures.filter_grid, tools.filters: per-kernel scaling, groups as blocks, PNG, TensorBoard,
the in-band part of a run trained on upsampled photos (--photo_px)."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import checkpoint
from alexnet_jax import inference
from alexnet_jax import pictures
from alexnet_jax.tools import filters
from alexnet_jax.tools import probe
from conftest import error_line
from conftest import run_modules
from conftest import tiny_config


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


def _cosine(fy, fx, amplitude=1.0, size=11):
  """[size, size, 3, 1]: a 2-D cosine of fy, fx cycles per pixel, the same in each channel."""
  y, x = np.mgrid[:size, :size]
  wave = amplitude * np.cos(2 * np.pi * (fy * y + fx * x))
  return np.repeat(wave[:, :, None, None], 3, axis=2)


def test_the_cutoff_is_the_band_of_photos_scaled_by_the_paper_crop():
  # configs/cifar10.py: a 28-px window of the 32-px photos (64 * 224/256 of them) scaled to 64.
  data = tiny_config(**{'data.image_size': 64}).data
  assert filters.band_cutoff(32, data) == (0.5 * 28 / 64, 64 / 28)
  assert filters.band_cutoff(256, tiny_config(**{'data.image_size': 224}).data) == (0.5, 1.0)
  with pytest.raises(filters.BandError, match='negative'):
    filters.band_cutoff(-1, data)
  with pytest.raises(filters.BandError, match="data.crop='paper'"):
    filters.band_cutoff(32, tiny_config(**{'data.crop': 'inception'}).data)


def test_the_low_pass_keeps_the_in_band_cosine_and_drops_the_one_above():
  cutoff = 0.5 * 28 / 64  # between 2/11 and 3/11 cycles per pixel
  # max(|fy|, |fx|) decides, not the radius: (2/11, 2/11) is 0.257 from the origin, yet in band.
  inside = _cosine(2 / 11, 2 / 11) + 0.3
  kernel = inside + _cosine(2 / 11, 3 / 11, amplitude=2.0) + _cosine(-3 / 11, 0, amplitude=0.5)
  np.testing.assert_allclose(filters.in_band(kernel, cutoff), inside, atol=1e-5)
  np.testing.assert_allclose(filters.in_band(inside, cutoff), inside, atol=1e-5)
  mask = filters.above_band_mask((11, 11), cutoff)
  assert mask.sum() == 121 - 25 and not mask[:3, :3].any() and mask[3, 0] and mask[0, -3]


def test_energy_above_the_band_and_its_correlation_with_the_initial_kernels():
  cutoff = 0.5 * 28 / 64
  # Cosines of nonzero frequency: energy amplitude^2 * 121/2 each, here 1 in band and 4 above it.
  kernel = _cosine(1 / 11, 0) + _cosine(0, 4 / 11, amplitude=2.0)
  np.testing.assert_allclose(filters.energy_above(kernel, cutoff), 4 / 5, rtol=1e-9)
  rng = np.random.default_rng(0)
  initial = rng.normal(size=(11, 11, 3, 96))
  # Training that moved the in-band part only leaves the above-band part as it was: correlation 1.
  moved = initial + 3 * filters.in_band(rng.normal(size=initial.shape), cutoff)
  np.testing.assert_allclose(filters.above_band_correlation(moved, initial, cutoff), 1.0,
                             atol=1e-6)
  np.testing.assert_allclose(filters.energy_above(moved, cutoff) * np.sum(moved ** 2),
                             filters.energy_above(initial, cutoff) * np.sum(initial ** 2),
                             rtol=1e-5)
  noise = rng.normal(size=initial.shape)
  other = filters.in_band(initial, cutoff) + noise - filters.in_band(noise, cutoff)
  # ~64,000 independent numbers: the correlation's standard deviation is about 0.004.
  assert abs(filters.above_band_correlation(other, initial, cutoff)) < 0.03


def test_photo_px_draws_the_in_band_part_and_prints_its_figures(trained_run, tmp_path):
  workdir, _ = trained_run
  output = str(tmp_path / 'in_band.png')
  drawn, negative, no_band = run_modules(
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', '--step=6', '--photo_px=32',
       f'--output={output}'),
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', '--photo_px=-4',
       f'--output={tmp_path / "negative.png"}'),
      # 73 px: the 64-px window of a 64-px crop, not scaled: cutoff 0.5, nothing above it.
      ('alexnet_jax.tools.filters', f'--workdir={workdir}', '--photo_px=73',
       f'--output={tmp_path / "no_band.png"}'))
  assert drawn.returncode == 0, drawn.stderr[-3000:]
  # The tiny run's 64-px crops, as configs/cifar10.py's: 28 of 32 px scaled to 64.
  clf = inference.load(workdir, 6)
  kernel = np.asarray(clf.params['conv1']['kernel'])
  initial = np.asarray(probe.initial_params(clf)['conv1']['kernel'])
  cutoff = 0.5 * 28 / 64
  assert drawn.stdout == (
      f'conv1 above 0.219 cycles/pixel (32-px photos scaled x2.29): '
      f'{filters.energy_above(kernel, cutoff):.1%} of the energy trained, '
      f'{filters.energy_above(initial, cutoff):.1%} initialised; correlation with the initial '
      f'kernels {filters.above_band_correlation(kernel, initial, cutoff):.3f}\n')
  assert (f'wrote {output}: 96 kernels, step 6, 2 group(s), in-band part below 0.219 '
          'cycles/pixel (32-px photos scaled x2.29)') in drawn.stderr
  # Read back: the tiles are the low-passed kernels', each at its own contrast, not the kernels'.
  tiles, rows = _drawn_tiles(np.asarray(Image.open(output).convert('RGB')), 11)
  assert len(rows) == 6
  np.testing.assert_array_equal(
      tiles, np.round(pictures.tiles(filters.in_band(kernel, cutoff)) * 255).astype(np.uint8))
  assert np.any(tiles != np.round(pictures.tiles(kernel) * 255).astype(np.uint8))
  assert negative.returncode == 1 and '--photo_px=-4 is negative' in error_line(negative)
  assert no_band.returncode == 1 and 'nothing to remove' in error_line(no_band)
  assert not (tmp_path / 'negative.png').exists() and not (tmp_path / 'no_band.png').exists()
