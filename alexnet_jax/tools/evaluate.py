"""Evaluates a saved run on its own data config, or with keys overridden (10 crops, another split).

  python -m alexnet_jax.tools.evaluate --workdir=runs/alexnet [--step=N|best] \
      [--config.data.eval_crops=10] [--config.data.eval_split=...] [--config.data.name=folder:...]

Prints progress on stderr, the metrics (count, loss, top1, top5) as one JSON object on the last
line of stdout, and appends them with the step and the overrides to WORKDIR/evaluations.jsonl.
With the run's own config this is the run's last eval row of metrics.jsonl, exactly.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import ml_collections
from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import checkpoint
  from alexnet_jax import inference
  from alexnet_jax import model as model_lib
  from alexnet_jax import parallel
  from alexnet_jax import paths
  from alexnet_jax import train
  from alexnet_jax import train_step as step_lib
  from alexnet_jax import workdir as workdir_lib

FLAGS = flags.FLAGS
EVALUATIONS = 'evaluations.jsonl'


def _workdir_argument(argv) -> str:
  for i, arg in enumerate(argv):
    if arg.startswith('--workdir='):
      return arg.split('=', 1)[1]
    if arg == '--workdir' and i + 1 < len(argv):
      return argv[i + 1]
  if cli.asks_for_help(argv):
    return None
  cli.fail('--workdir is required: python -m alexnet_jax.tools.evaluate --workdir=W '
           '[--config.KEY=VALUE ...]')


def define_flags(argv) -> None:
  """--workdir, --step, and --config: the run's config.json, each key overridable (evaluate applies
  the overrides to the config saved with the step it evaluates)."""
  workdir = _workdir_argument(argv)
  flags.DEFINE_string('workdir', None, 'A trained run (or one of its checkpoints/<step> folders).')
  flags.DEFINE_string('step', '', "Checkpoint step: '' the newest good one, N, or 'best'.")
  if workdir is None:  # --help alone: the run's config keys come with --workdir
    return
  path = os.path.join(inference.run_dir(workdir), 'config.json')
  if not paths.exists(path):
    cli.fail(f'{workdir} has no config.json: give the workdir of a run (or of '
             'tools.import_torchvision).')
  config = inference.read_config(path)
  cli.define_config_dict(config, argv, 'The run\'s config; override any key.')


def evaluate(workdir: str, step, overrides: dict) -> tuple[dict, int]:
  """(metrics, step) of a saved run's parameters on all devices, with the config saved with them
  and overrides ({dotted key: value}) on top: config.json is the newest step's, and a resume may
  have changed a shape-neutral key (model.activation, model.lrn) since an older step."""
  host_params, step, saved = checkpoint.load_params(workdir, step)
  config = ml_collections.ConfigDict(saved)
  config.update_from_flattened_dict(overrides)
  mesh, info = train.mesh_and_data(config)
  specs = parallel.param_specs(host_params)
  params = parallel.host_to_mesh(host_params, mesh, specs)
  eval_step = step_lib.make_eval_step(model_lib.build(config.model), mesh, specs)
  total = -(-info.num_eval_examples // config.data.batch_size)
  start = time.time()

  def progress(done):
    rate = done * config.data.batch_size / max(time.time() - start, 1e-9)
    print(f'\revaluating step {step}: batch {done}/{total}, {rate:.0f} images/s', end='',
          file=sys.stderr, flush=True)
  metrics = train.evaluate(eval_step, params, config, mesh, on_batch=progress)
  print(file=sys.stderr)
  return metrics, step


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; config keys are set as --config.KEY=VALUE.')
  try:
    metrics, step = evaluate(FLAGS.workdir, cli.parse_step(FLAGS.step),
                             cli.overridden_values(FLAGS.config, sys.argv))
  except (ValueError, FileNotFoundError) as e:  # config, data and checkpoint errors
    cli.fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
  record = {'step': step, 'overrides': cli.config_overrides(sys.argv), 'time': round(time.time(), 3),
            **metrics}
  try:
    workdir_lib.append_line(os.path.join(inference.run_dir(FLAGS.workdir), EVALUATIONS),
                            json.dumps(record))
  except workdir_lib.WriteError as e:
    cli.fail(str(e))
  print(json.dumps(metrics))


if __name__ == '__main__':
  define_flags(sys.argv)
  cli.run(main)
