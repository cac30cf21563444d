"""Evaluates a saved run on its own data config, or with keys overridden (10 crops, another split);
or an ensemble of runs.

  python -m alexnet_jax.tools.evaluate --workdir=runs/alexnet [--step=N|best] [--ema] \
      [--config.data.eval_crops=10] [--config.data.eval_split=...] [--config.data.name=folder:...]
  python -m alexnet_jax.tools.evaluate --workdir=runs/seed0 --workdir=runs/seed1 \
      --workdir=runs/seed2 [--config.data.eval_crops=10] [--logits=members.npz]

Prints progress on stderr, the metrics (count, loss, top1, top5) as one JSON object on the last
line of stdout, and appends them with the step and the overrides to WORKDIR/evaluations.jsonl.
With the run's own config this is the run's last eval row of metrics.jsonl, exactly.

Several --workdir: an ensemble, the mean of the runs' softmax outputs (each averaged over its
crops first), as the paper's Table 2. The runs must share their classes and image size; each
reads its own config.json with the same overrides, and all must evaluate the same examples. The
JSON line holds {'members': [each run's workdir, step and metrics], 'ensemble': metrics}; nothing
is appended to the runs' evaluations.jsonl. --logits saves each member's log-probabilities and the
labels (numpy .npz) for analyses of your own.
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
  import jax
  import numpy as np
  from alexnet_jax import checkpoint
  from alexnet_jax import classes
  from alexnet_jax import inference
  from alexnet_jax import input_pipeline
  from alexnet_jax import metrics as metrics_lib
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
  cli.define_run_flags(several=True, required=False)  # required: checked above, help or not
  flags.DEFINE_string('logits', '', 'Ensembles: save the members\' log-probabilities and the '
                      'labels to this .npz file.')
  if workdir is None:  # --help alone: the run's config keys come with --workdir
    return
  path = os.path.join(workdir_lib.run_dir(workdir), 'config.json')
  if not paths.exists(path):
    cli.fail(f'{workdir} has no config.json: give the workdir of a run (or of '
             'tools.import_torchvision).')
  config = workdir_lib.read_config(path)
  cli.define_config_dict(config, argv, 'The run\'s config; override any key.')


def _on_mesh(workdir: str, step, overrides: dict, ema: bool = False):
  """(params on the mesh, step, config, mesh, info, their PartitionSpecs) of a saved run: the
  config saved with the step and overrides ({dotted key: value}) on top. config.json is the newest
  step's, and a resume may have changed a shape-neutral key (model.activation) since an older step."""
  host_params, step, saved = checkpoint.load_params(workdir, step, ema=ema)
  config = ml_collections.ConfigDict(saved)
  config.update_from_flattened_dict(overrides)
  mesh, info = train.mesh_and_data(config)
  specs = parallel.param_specs(host_params)
  return parallel.host_to_mesh(host_params, mesh, specs), step, config, mesh, info, specs


def evaluate(workdir: str, step, overrides: dict, ema: bool = False) -> tuple[dict, int]:
  """(metrics, step) of a saved run's parameters on all devices (_on_mesh's config)."""
  params, step, config, mesh, info, specs = _on_mesh(workdir, step, overrides, ema)
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


def member_logprobs(workdir: str, step, overrides: dict, ema: bool = False):
  """(log-probabilities [N, K] float32, labels [N], step) of a run over its eval split's real
  examples, in the split's order (one process)."""
  params, step, config, mesh, _, specs = _on_mesh(workdir, step, overrides, ema)
  logprobs_step = step_lib.make_logprobs_step(model_lib.build(config.model), mesh, specs)
  batches = input_pipeline.create_eval_iterator(config.data, seed=config.seed,
                                                num_classes=config.model.num_classes)
  rows, labels = [], []
  for batch in parallel.prefetch(batches, mesh):
    keep = np.asarray(jax.device_get(batch['mask']), bool)
    rows.append(np.asarray(jax.device_get(logprobs_step(params, batch)))[keep])
    labels.append(np.asarray(jax.device_get(batch['label']))[keep])
  return np.concatenate(rows), np.concatenate(labels), step


def metrics_of(logprobs_NK, labels_N) -> dict:
  """count, loss, top1, top5 of log-probabilities, as the eval step sums them."""
  rows = np.arange(len(labels_N))
  true = logprobs_NK[rows, labels_N]
  # Classes ranked above the true one; a tie goes to the lower class index, as lax.top_k's.
  lower = np.arange(logprobs_NK.shape[1])[None, :] < labels_N[:, None]
  ahead = ((logprobs_NK > true[:, None]) | ((logprobs_NK == true[:, None]) & lower)).sum(axis=1)
  return metrics_lib.from_sums({'loss': -true.astype(np.float64).sum(),
                                'top1': (ahead == 0).sum(), 'top5': (ahead < 5).sum(),
                                'count': len(labels_N)})


def evaluate_ensemble(workdirs, step, overrides: dict, ema: bool = False, logits_path: str = ''):
  """{'members': [...], 'ensemble': metrics}: the mean of the runs' softmax outputs."""
  configs, names = [], []
  for workdir in workdirs:  # checked before any run is evaluated
    config = workdir_lib.read_config(os.path.join(workdir_lib.run_dir(workdir), 'config.json'))
    config.update_from_flattened_dict(overrides)
    configs.append(config)
    names.append(classes.read(workdir_lib.run_dir(workdir), config.model.num_classes)[0])
  inference.check_members(list(workdirs), configs, names)
  members, logprobs, labels = [], [], None
  for workdir in workdirs:
    member, member_labels, found = member_logprobs(workdir, step, overrides, ema)
    if labels is not None and not np.array_equal(member_labels, labels):
      raise inference.EnsembleError(f'{workdir} evaluates other examples than {workdirs[0]}: '
                                    'give the runs the same data (--config.data.* overrides).')
    labels = member_labels
    logprobs.append(member)
    members.append({'workdir': workdir, 'step': found, **metrics_of(member, labels)})
  if logits_path:
    np.savez(logits_path, logprobs=np.stack(logprobs), labels=labels,
             workdirs=np.array(list(workdirs)))
  return {'members': members,
          'ensemble': metrics_of(inference.log_mean_probs(np.stack(logprobs)), labels)}


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; config keys are set as --config.KEY=VALUE.')
  overrides = cli.overridden_values(FLAGS.config, sys.argv)
  if len(FLAGS.workdir) > 1:
    print(json.dumps(evaluate_ensemble(FLAGS.workdir, cli.step(), overrides, FLAGS.ema,
                                       FLAGS.logits)))
    return
  workdir = FLAGS.workdir[0]
  metrics, step = evaluate(workdir, cli.step(), overrides, FLAGS.ema)
  record = {'step': step, 'overrides': cli.config_overrides(sys.argv), 'time': round(time.time(), 3),
            'ema': FLAGS.ema, **metrics}
  workdir_lib.append_line(os.path.join(workdir_lib.run_dir(workdir), EVALUATIONS),
                          json.dumps(record))
  print(json.dumps(metrics))

if __name__ == '__main__':
  define_flags(sys.argv)
  cli.run(main)
