"""Runs read back from their workdirs (config.json, metrics.jsonl), found under folders, grouped
over seeds: what tools.report tabulates and plots, and what a notebook compares.

Reads whatever is there, so a run still going (or never started) is read as far as it got.
Local folders and gs:// alike (paths.py).
"""
import dataclasses
import json
import math
import os

import numpy as np

from alexnet_jax import errors
from alexnet_jax import paths

CONFIG, METRICS = 'config.json', 'metrics.jsonl'
DIVERGED = 'diverged_checkpoints'  # train.py moves checkpoints here when the loss goes NaN
SEED = 'seed'


class RunsError(errors.Error, ValueError):
  """A folder that holds no run, or does not exist; the message names it."""


@dataclasses.dataclass
class Run:
  name: str  # the workdir's folder name (a sweep's point name)
  path: str
  config: dict  # flattened: {'model.lrn': False, ...}; {} when config.json is missing
  train: list  # metrics.jsonl rows of split 'train', by step
  eval: list  # rows of split 'eval'

  @property
  def last_step(self) -> int:
    return max((r['step'] for r in self.train + self.eval), default=0)

  @property
  def total_steps(self) -> int:
    return int(self.config.get('total_steps') or 0)  # 0: set by num_epochs, unknown here

  @property
  def finished(self) -> bool:
    """Reached total_steps (a run sized by epochs counts as finished once it has evaluated)."""
    if self.total_steps:
      return self.last_step >= self.total_steps
    return bool(self.eval) and self.eval[-1]['step'] == self.last_step

  @property
  def diverged(self) -> bool:
    """Its latest state is: the last logged loss is not finite, or train.py set a checkpoint aside
    as diverged and nothing was logged after it (a resume from an earlier step drops the rows after
    that step, and one that gets past the diverged checkpoint's step is diverged no longer)."""
    if self.train and not math.isfinite(self.train[-1].get('loss', 0.0)):
      return True
    # train.py sets aside at most the checkpoint of the step before the first non-finite loss, and
    # logs no row after it; move_aside appends '_' to a step's name taken there.
    steps = [int(n.rstrip('_')) for n in paths.listdir(os.path.join(self.path, DIVERGED))
             if n.rstrip('_').isdigit()]
    return bool(steps) and self.last_step <= max(steps)


def flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def _rows(path: str) -> list[dict]:
  """metrics.jsonl's rows; a half-written last line (a run writing now) is left out."""
  rows = []
  if paths.exists(path):
    for line in paths.read_bytes(path).split(b'\n'):
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return sorted(rows, key=lambda r: r['step'])


def is_run(path: str) -> bool:
  return paths.isfile(os.path.join(path, CONFIG)) or paths.isfile(os.path.join(path, METRICS))


def read(path: str) -> Run:
  config = {}
  if paths.isfile(os.path.join(path, CONFIG)):
    config = flatten(json.loads(paths.read_bytes(os.path.join(path, CONFIG))))
  rows = _rows(os.path.join(path, METRICS))
  return Run(name=os.path.basename(os.path.normpath(path)), path=path, config=config,
             train=[r for r in rows if r.get('split') == 'train'],
             eval=[r for r in rows if r.get('split') == 'eval'])


def find(folders) -> list[Run]:
  """The runs of each folder: itself if a workdir, else the workdirs below it (sorted, any
  depth)."""
  runs = []
  for folder in folders:
    if not paths.isdir(folder):
      raise RunsError(f'{folder}: no such folder.')
    found = [read(workdir) for workdir in _workdirs(folder)]
    if not found:
      raise RunsError(f'{folder} holds no run: give a workdir (with {CONFIG} or {METRICS}) or '
                      'a folder of workdirs (a sweep\'s workdir_root).')
    runs += found
  return runs


def _workdirs(folder: str) -> list[str]:
  """folder if it is a run, else the runs below it, depth first in name order; a run's own
  folders (checkpoints and the like) are not searched."""
  if is_run(folder):
    return [folder]
  below = sorted(n for n in paths.listdir(folder) if paths.isdir(os.path.join(folder, n)))
  return [w for name in below for w in _workdirs(os.path.join(folder, name))]


def without_seed(name: str) -> str:
  """A sweep point name less its seed=N part: 'lr=0.1,seed=2' -> 'lr=0.1'."""
  parts = [p for p in name.split(',') if not p.startswith(f'{SEED}=')]
  return ','.join(parts) or 'baseline'


@dataclasses.dataclass
class Group:
  """Runs whose configs differ in the seed only."""
  name: str
  runs: list

  @property
  def config(self) -> dict:
    return self.runs[0].config


def group(runs) -> list[Group]:
  """Runs grouped by their config less the seed, in the order of each group's first run."""
  groups = {}
  for run in runs:
    key = json.dumps({k: v for k, v in run.config.items() if k != SEED}, sort_keys=True,
                     default=str) if run.config else run.path  # no config: a group of its own
    groups.setdefault(key, Group(without_seed(run.name), [])).runs.append(run)
  return list(groups.values())


def baseline(groups) -> Group:
  """The group named 'baseline' (a sweep's empty point) if there is one, else the first."""
  return next((g for g in groups if g.name == 'baseline'), groups[0])


def changes(config: dict, reference: dict) -> str:
  """KEY=VALUE for each key whose value differs from the reference (the seed aside)."""
  keys = sorted((set(config) | set(reference)) - {SEED})
  return ' '.join(f'{k}={config.get(k)}' for k in keys if config.get(k) != reference.get(k))


def steps_to(rows, key: str, target: float):
  """The first logged step whose `key` is >= target; None if none is."""
  return next((r['step'] for r in rows if r.get(key, -math.inf) >= target), None)


def mean_std(values):
  """(mean, std, n) of the finite values; std is 0 for one value; (nan, nan, 0) for none."""
  finite = [float(v) for v in values if v is not None and math.isfinite(v)]
  if not finite:
    return math.nan, math.nan, 0
  std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
  return float(np.mean(finite)), std, len(finite)
