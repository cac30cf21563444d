"""Checkpoint averaging: a new workdir whose parameters are the mean of several checkpoints of a run.

  python -m alexnet_jax.tools.average --workdir=runs/alexnet --steps=80000,85000,90000 \
      --output_workdir=runs/alexnet_avg
  python -m alexnet_jax.tools.evaluate --workdir=runs/alexnet_avg --config.data.eval_crops=10

--steps: the checkpoints to average (default: every one the run keeps; checkpoint.keep sets how
many). The mean is taken in float64 and stored as float32. OUTPUT_WORKDIR holds it as a checkpoint of the
newest averaged step, with the run's config and class names: evaluate, predict, export, filters,
neighbours read it, and init_from starts from it. The run's optimizer state is not carried over.
"""
from __future__ import annotations

import os

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
  from alexnet_jax import paths
  from alexnet_jax import workdir as workdir_lib

FLAGS = flags.FLAGS


def saved_steps(workdir: str) -> list[int]:
  folder = os.path.join(workdir_lib.run_dir(workdir), 'checkpoints')
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
  _, ids = classes.read(workdir_lib.run_dir(workdir), config.model.num_classes)
  checkpoint.write_params_workdir(mean, output, config, ids, step=steps[-1])
  return {'steps': steps, 'step': steps[-1], 'params': mean}


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  if paths.exists(FLAGS.output_workdir) and paths.listdir(FLAGS.output_workdir):
    cli.fail(f'--output_workdir={FLAGS.output_workdir} exists and is not empty: give a new folder.')
  bad = [s for s in FLAGS.steps if not s.isdigit()]
  if bad:
    cli.fail(f'--steps={",".join(FLAGS.steps)}: {bad[0]!r} is not a step; give numbers, e.g. '
             f'--steps={",".join(map(str, saved_steps(FLAGS.workdir))) or "1000,2000"}.')
  with cli.output(FLAGS.output_workdir, '--output_workdir'):
    done = average(FLAGS.workdir, [int(s) for s in FLAGS.steps], FLAGS.output_workdir)
  cli.wrote(FLAGS.output_workdir, f'the mean of {FLAGS.workdir} steps '
            f'{",".join(map(str, done["steps"]))} (as step {done["step"]})')


if __name__ == '__main__':
  cli.define_run_flags(step=False)  # --steps names the steps averaged
  flags.DEFINE_list('steps', [], 'Checkpoint steps to average (default: every one it keeps).')
  flags.DEFINE_string('output_workdir', None, 'A new folder for the averaged run.')
  flags.mark_flag_as_required('output_workdir')
  cli.run(main)
