"""Does the input pipeline outrun the train step? Both, and the two together, in one run.

  python -m alexnet_jax.tools.bench_feed [--batch_size 64] [--image_size 224] [--rounds 3]

Alternating rounds on this machine's cores: the training pipeline alone (decode + paper
augmentation + batch, on ImageNet-sized JPEGs made in the run), the train step alone (the CLI's
step, torchvision layout, on one resident batch), and the pipeline feeding the step through
train.py's prefetch. If the pipeline outruns the step, the fed rate equals the step's rate.
"""
from __future__ import annotations

import time

from alexnet_jax import xla_flags

xla_flags.apply()

# pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections
import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax.tools import bench_input

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  from alexnet_jax import compile_cache, input_pipeline, optim, parallel
  from alexnet_jax import model as model_lib
  from alexnet_jax import train_step as step_lib

FLAGS = flags.FLAGS


def _rate(next_batch, step, state, batch_size, seconds):
  """Images per wall second of `step` over about `seconds` (after one warm step)."""
  state, _ = step(state, next_batch())
  jax.block_until_ready(state)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    state, _ = step(state, next_batch())
    count += batch_size
  jax.block_until_ready(state)
  return state, count / (time.perf_counter() - start)


def run(batch_size: int, size: int, rounds: int, seconds: float, *, fc_width: int = 4096,
        num_images: int = 256) -> dict:
  """{'pipeline', 'step', 'fed step': median images per wall second}; fc_width and num_images
  (the JPEGs the pipeline cycles through) make a smaller run than torchvision's AlexNet."""
  config = cli.load_config_file('default')
  data_config = ml_collections.ConfigDict(dict(
      batch_size=batch_size, image_size=size, crop='paper', flip=True, pca_lighting_std=0.1))
  jpegs = bench_input.make_jpegs(num_images)
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=1, model=1)), jax.devices()[:1])
  model = model_lib.AlexNet(variant='torchvision', fc_width=fc_width)
  tx = optim.make_optimizer(config.optimizer, lambda _: config.optimizer.learning_rate)
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=size, seed=0)
  step = step_lib.make_train_step(model, tx, mesh, specs, seed=0)

  def host_batches():
    dataset = input_pipeline.train_dataset(data_config, bench_input.memory_source(jpegs), seed=0)
    return dataset.as_numpy_iterator()

  resident = parallel.global_batch(mesh, next(host_batches()))
  samples = {'pipeline': [], 'step': [], 'fed step': []}
  for _ in range(rounds):
    batches = host_batches()
    next(batches)
    samples['pipeline'].append(bench_input.measure(batches, batch_size, seconds)[1])  # wall
    state, rate = _rate(lambda: resident, step, state, batch_size, seconds)
    samples['step'].append(rate)
    fed = parallel.prefetch(host_batches(), mesh)
    state, rate = _rate(lambda: next(fed), step, state, batch_size, seconds)
    fed.close()
    samples['fed step'].append(rate)
  return {name: float(np.median(rates)) for name, rates in samples.items()}


def main(argv):
  del argv
  compile_cache.enable(cli.load_config_file('default').compilation_cache_dir)
  figures = run(FLAGS.batch_size, FLAGS.image_size, FLAGS.rounds, FLAGS.seconds)
  for name, rate in figures.items():
    print(f'{name:10s} {rate:8.1f} img/s (median of {FLAGS.rounds} rounds, wall clock)')
  print(f'pipeline / step: {figures["pipeline"] / figures["step"]:.1f}x; fed step / step: '
        f'{figures["fed step"] / figures["step"]:.2f}')


def define_flags() -> None:
  flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
  flags.DEFINE_integer('image_size', 224, 'Crop size.')
  flags.DEFINE_integer('rounds', 3, 'Alternating rounds; medians are reported.')
  flags.DEFINE_float('seconds', 8.0, 'Time per measurement per round.')


if __name__ == '__main__':
  define_flags()
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
