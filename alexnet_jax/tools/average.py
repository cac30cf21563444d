"""Checkpoint averaging: a new workdir whose parameters are the mean of several checkpoints of a run.

  python -m alexnet_jax.tools.average --workdir=runs/alexnet --steps=80000,85000,90000 \
      --output=runs/alexnet_avg
  python -m alexnet_jax.tools.evaluate --workdir=runs/alexnet_avg --config.data.eval_crops=10

--steps: the checkpoints to average (default: every one the run keeps; checkpoint.keep sets how
many). The mean is taken in float64 and stored as float32. OUTPUT holds it as a checkpoint of the
newest averaged step, with the run's config and class names: evaluate, predict, export, filters,
neighbours read it, and init_from starts from it. The run's optimizer state is not carried over.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import ml_collections
import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  from alexnet_jax import checkpoint
  from alexnet_jax import classes
  from alexnet_jax import inference
  from alexnet_jax import paths

FLAGS = flags.FLAGS


def saved_steps(workdir: str) -> list[int]:
  folder = os.path.join(inference.run_dir(workdir), 'checkpoints')
  return sorted(int(n) for n in paths.listdir(folder) if n.isdigit()) if paths.isdir(folder) else []


def average(workdir: str, steps, output: str) -> dict:
  """Writes the mean of `steps`' parameters to output; returns {'steps', 'step', 'params'}."""
  steps = sorted(set(steps or saved_steps(workdir)))
  if not steps:
    raise checkpoint.CheckpointError(f'{workdir} holds no checkpoint to average.')
  total, config = None, None
  for step in steps:
    params, _, saved = checkpoint.load_params(workdir, step)
    if total is None:
      total = jax.tree.map(lambda x: x.astype(np.float64), params)
    else:
      total = jax.tree.map(lambda t, x: t + x, total, params)
    config = saved  # the newest step's config
  mean = jax.tree.map(lambda t: (t / len(steps)).astype(np.float32), total)
  config = ml_collections.ConfigDict(config)
  _, ids = classes.read(inference.run_dir(workdir), config.model.num_classes)
  checkpoint.write_params_workdir(mean, output, config, ids, step=steps[-1])
  return {'steps': steps, 'step': steps[-1], 'params': mean}


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  if paths.exists(FLAGS.output) and paths.listdir(FLAGS.output):
    cli.fail(f'--output={FLAGS.output} exists and is not empty: give a new folder.')
  bad = [s for s in FLAGS.steps if not s.isdigit()]
  if bad:
    cli.fail(f'--steps={",".join(FLAGS.steps)}: {bad[0]!r} is not a step; give numbers, e.g. '
             f'--steps={",".join(map(str, saved_steps(FLAGS.workdir))) or "1000,2000"}.')
  try:
    done = average(FLAGS.workdir, [int(s) for s in FLAGS.steps], FLAGS.output)
  except (checkpoint.CheckpointError, classes.ClassesError) as e:
    cli.fail(str(e))
  print(f'{FLAGS.workdir} steps {",".join(map(str, done["steps"]))} averaged -> {FLAGS.output} '
        f'(step {done["step"]})', file=sys.stderr)


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'A trained run.')
  flags.DEFINE_list('steps', [], 'Checkpoint steps to average (default: every one it keeps).')
  flags.DEFINE_string('output', None, 'A new folder for the averaged run.')
  flags.mark_flags_as_required(['workdir', 'output'])
  cli.run(main)
