"""Draws conv1's kernels of a trained run as a grid of RGB tiles (the paper's Figure 3).

  python -m alexnet_jax.tools.filters --workdir=runs/alexnet [--step=N|best] [--photo_px=N] \
      --output=filters.png

Each 11x11x3 kernel is one tile, scaled to its own range (min black, max white). With
model.groups=2 the kernels feeding each group of conv2 (the paper's two GPUs: 48 and 48) are
drawn as two separate blocks, as in the paper. train.py logs the same grid to TensorBoard
(conv1/filters) at each eval, so that filters can be watched forming.

--photo_px=N, for a run trained on photos of N px scaled up (configs/cifar10.py: 28 of CIFAR-10's
32 px to 64): the photos hold nothing above 0.5 / scale cycles per pixel, so the kernels' components
above that get almost no gradient and keep their initial values, noise over the learned picture.
The tool then draws each kernel's in-band part (its 2-D DFT, per input channel, with the components
whose max(|fy|, |fx|) exceeds the cutoff zeroed) and prints on stdout the share of the kernels'
energy above the cutoff, trained and freshly initialised (config.seed), and the correlation of the
trained kernels' above-band DFT part with the initial kernels' (Pearson, real and imaginary parts).
"""
from __future__ import annotations

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax import errors

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import data_sources
  from alexnet_jax import inference
  from alexnet_jax import pictures
  from alexnet_jax import preprocess
  from alexnet_jax.tools import probe

FLAGS = flags.FLAGS
PIXELS_PER_TAP = 6  # each kernel tap drawn as a 6x6 block: an 11x11 tile is 66 px wide


def define_flags() -> None:
  cli.define_run_flags()
  flags.DEFINE_string('output', None, 'The PNG to write.')
  flags.mark_flag_as_required('output')
  flags.DEFINE_integer('photo_px', 0, "The photos' side in pixels before the pipeline scaled them "
                       "up (CIFAR-10: 32): draw the kernels' part below the photos' band limit and "
                       'print how much lies above it. 0: the kernels as they are.')


class BandError(errors.ConfigError):
  """A --photo_px that leaves no band to cut, or a run whose photos were not scaled by one factor."""


def band_cutoff(photo_px: int, data_config) -> tuple[float, float]:
  """(cutoff in cycles per input pixel, scale) of photos of photo_px px through the 'paper' crop:
  a window of int(photo_px * size / resize_side) px (preprocess._crop_side) scaled to image_size."""
  if photo_px < 0:
    raise BandError(f'--photo_px={photo_px} is negative; give the photos\' side in pixels (CIFAR-10: '
                    '32), or 0 for the kernels as they are.')
  crop = data_config.get('crop', 'paper')
  if crop != 'paper':
    raise BandError(f"--photo_px needs a run trained with data.crop='paper' (one scale for every "
                    f"photo); this one used {crop!r}, whose scale varies per photo.")
  size = data_config['image_size']
  window = max(1, int(photo_px * size / preprocess.resize_side(
      size, data_sources.resize_ratio(data_config))))
  scale = size / window
  return 0.5 / scale, scale


def above_band_mask(shape_hw, cutoff: float):
  """bool [H, W]: the 2-D DFT components (np.fft.fftfreq order) whose max(|fy|, |fx|) in cycles
  per pixel exceeds cutoff."""
  fy, fx = (np.abs(np.fft.fftfreq(n)) for n in shape_hw)
  return np.maximum(fy[:, None], fx[None, :]) > cutoff + 1e-9  # a frequency at the cutoff is kept


def above_band(kernel_HWIO, cutoff: float):
  """complex [H, W, I, O]: the kernels' DFT over the spatial axes with the in-band components 0."""
  spectrum = np.fft.fft2(np.asarray(kernel_HWIO, np.float64), axes=(0, 1))
  return spectrum * above_band_mask(spectrum.shape[:2], cutoff)[:, :, None, None]


def in_band(kernel_HWIO, cutoff: float):
  """The kernels low-passed: their DFT components above cutoff zeroed, float32 [H, W, I, O]."""
  spectrum = np.fft.fft2(np.asarray(kernel_HWIO, np.float64), axes=(0, 1))
  kept = spectrum * ~above_band_mask(spectrum.shape[:2], cutoff)[:, :, None, None]
  return np.real(np.fft.ifft2(kept, axes=(0, 1))).astype(np.float32)


def energy_above(kernel_HWIO, cutoff: float) -> float:
  """The share of the kernels' energy (sum of squares, Parseval) above cutoff."""
  total = np.sum(np.abs(np.fft.fft2(np.asarray(kernel_HWIO, np.float64), axes=(0, 1))) ** 2)
  return float(np.sum(np.abs(above_band(kernel_HWIO, cutoff)) ** 2) / total)


def above_band_correlation(kernel_HWIO, initial_HWIO, cutoff: float) -> float:
  """Pearson correlation of two kernels' above-band DFT parts, real and imaginary parts flattened:
  near 1 where training left the above-band part as initialised."""
  mask = above_band_mask(np.shape(kernel_HWIO)[:2], cutoff)
  parts = [above_band(k, cutoff)[mask] for k in (kernel_HWIO, initial_HWIO)]
  a, b = (np.concatenate([p.real.ravel(), p.imag.ravel()]) for p in parts)
  return float(np.corrcoef(a, b)[0, 1])


def draw(kernel_HWIO, groups: int, path: str, title: str) -> None:
  """Writes the PNG: one panel per group, each tile scaled to its own range."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  blocks = pictures.grid_blocks(kernel_HWIO, groups)
  height, width = blocks[0].shape[:2]
  inches = width * PIXELS_PER_TAP / 100
  block_inches = height * PIXELS_PER_TAP / 100 + 0.5
  fig, axes = plt.subplots(len(blocks), 1, squeeze=False,
                           figsize=(inches + 0.4, len(blocks) * block_inches + 0.6))
  per_group = kernel_HWIO.shape[-1] // groups
  for g, (axis, block) in enumerate(zip(axes[:, 0], blocks)):
    axis.imshow(block, interpolation='nearest')
    axis.set_xticks([])
    axis.set_yticks([])
    what = f'group {g + 1}: kernels {g * per_group}-{(g + 1) * per_group - 1}'
    axis.set_title(what if groups > 1 else f'{per_group} kernels', fontsize=10)
  fig.suptitle(title, fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  if not FLAGS.output.lower().endswith('.png'):
    cli.fail(f'--output={FLAGS.output}: give a .png file name.')
  clf = inference.load(FLAGS.workdir, cli.step(), ema=FLAGS.ema)
  kernel = np.asarray(clf.params['conv1']['kernel'])
  groups = clf.model.option('groups')
  if kernel.shape[-1] % groups:
    groups = 1  # conv1 is not split when its kernel count is odd
  size = f'{kernel.shape[0]}x{kernel.shape[1]}x{kernel.shape[2]}'
  title = f'conv1: {kernel.shape[-1]} kernels of {size}, step {clf.step}'
  detail = f'{kernel.shape[-1]} kernels, step {clf.step}, {groups} group(s)'
  if FLAGS.photo_px:
    cutoff, scale = band_cutoff(FLAGS.photo_px, clf.config.data)
    if not above_band_mask(kernel.shape[:2], cutoff).any():
      raise BandError(f'--photo_px={FLAGS.photo_px}: the cutoff {cutoff:.3f} cycles/pixel '
                      f'(x{scale:.2f}) leaves every component of a {kernel.shape[0]}x'
                      f'{kernel.shape[1]} kernel, nothing to remove; give the photos\' side before '
                      'the pipeline scaled them up, or leave the flag out.')
    initial = np.asarray(probe.initial_params(clf)['conv1']['kernel'])
    band = f'below {cutoff:.3f} cycles/pixel ({FLAGS.photo_px}-px photos scaled x{scale:.2f})'
    print(f'conv1 above {cutoff:.3f} cycles/pixel ({FLAGS.photo_px}-px photos scaled '
          f'x{scale:.2f}): {energy_above(kernel, cutoff):.1%} of the energy trained, '
          f'{energy_above(initial, cutoff):.1%} initialised; correlation with the initial '
          f'kernels {above_band_correlation(kernel, initial, cutoff):.3f}', flush=True)
    kernel = in_band(kernel, cutoff)
    title = f'{title}\nin-band part: {band}'
    detail = f'{detail}, in-band part {band}'
  with cli.output(FLAGS.output):  # the workdir as given: no machine's absolute path in the picture
    draw(kernel, groups, FLAGS.output, f'{title}\n{FLAGS.workdir}')
  cli.wrote(FLAGS.output, detail)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
