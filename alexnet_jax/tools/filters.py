"""Draws conv1's kernels of a trained run as a grid of RGB tiles (the paper's Figure 3).

  python -m alexnet_jax.tools.filters --workdir=runs/alexnet [--step=N|best] --output=filters.png

Each 11x11x3 kernel is one tile, scaled to its own range (min black, max white). With
model.groups=2 the kernels feeding each group of conv2 (the paper's two GPUs: 48 and 48) are
drawn as two separate blocks, as in the paper. train.py logs the same grid to TensorBoard
(conv1/filters) at each eval, so that filters can be watched forming.
"""
from __future__ import annotations

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import checkpoint
  from alexnet_jax import model as model_lib
  from alexnet_jax import pictures

FLAGS = flags.FLAGS
PIXELS_PER_TAP = 6  # each kernel tap drawn as a 6x6 block: an 11x11 tile is 66 px wide


def define_flags() -> None:
  cli.define_run_flags()
  flags.DEFINE_string('output', None, 'The PNG to write.')
  flags.mark_flag_as_required('output')


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
  params, step, config = checkpoint.load_params(FLAGS.workdir, cli.step(), ema=FLAGS.ema)
  kernel = params['conv1']['kernel']
  groups = model_lib.build(config['model']).option('groups')
  if kernel.shape[-1] % groups:
    groups = 1  # conv1 is not split when its kernel count is odd
  size = f'{kernel.shape[0]}x{kernel.shape[1]}x{kernel.shape[2]}'
  title = f'conv1: {kernel.shape[-1]} kernels of {size}, step {step}'
  with cli.output(FLAGS.output):  # the workdir as given: no machine's absolute path in the picture
    draw(kernel, groups, FLAGS.output, f'{title}\n{FLAGS.workdir}')
  cli.wrote(FLAGS.output, f'{kernel.shape[-1]} kernels, step {step}, {groups} group(s)')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
