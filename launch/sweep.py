"""Runs (or prints) one training command per point of a sweep, each in its own workdir.

  python launch/sweep.py --config=configs/default.py --sweep=configs/sweeps/ablations.py \
      --workdir_root=/runs/ablations [--dry_run] \
      [--launch_with='launch/local_multiprocess.sh 2 4'] \
      [--config.KEY=VALUE ...] [-- other flags added to every run]

A sweep file's get_sweep() returns a list of {'config.KEY': value} dicts. Every point is checked
against the config before anything runs. Points run one after another; a point whose run stopped
resumes from its checkpoint when the sweep is run again. Exits 1 if any point failed.
"""
import copy
import importlib.util
import os
import shlex
import subprocess
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # config files import configs.default

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Only when run as a script, so that tests can import this file beside alexnet_jax.main."""
  config_flags.DEFINE_config_file('config', None, 'The base configs/*.py file.', lock_config=True)
  flags.DEFINE_string('sweep', None, 'A configs/sweeps/*.py file with get_sweep().')
  flags.DEFINE_string('workdir_root', None, 'Each point runs in WORKDIR_ROOT/<point name>.')
  flags.DEFINE_bool('dry_run', False, 'Print the commands instead of running them.')
  flags.DEFINE_string('launch_with', '', "Command that runs alexnet_jax.main's flags, e.g. "
                      "'launch/local_multiprocess.sh 2 4'; default: python -m alexnet_jax.main.")
  flags.mark_flags_as_required(['config', 'sweep', 'workdir_root'])


def load_sweep(path: str) -> list[dict]:
  spec = importlib.util.spec_from_file_location('sweep', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_sweep()


def check_point(config, point: dict) -> None:
  """Sets the point's values on a copy of config: an unknown key or a wrong type raises."""
  config = copy.deepcopy(config)
  for dotted, value in point.items():
    prefix, *path, name = dotted.split('.')
    if prefix != 'config':
      raise KeyError(f'{dotted}: sweep keys start with "config."')
    node = config
    for part in path:
      node = getattr(node, part)
    if name not in node:
      raise KeyError(f'{dotted} is not a config key')
    setattr(node, name, value)


def point_name(point: dict) -> str:
  if not point:
    return 'baseline'
  return ','.join(f'{k.removeprefix("config.")}={v}' for k, v in sorted(point.items()))


def commands(config_path: str, sweep: list[dict], workdir_root: str, extra: list[str],
             launch_with: str = '') -> list[list[str]]:
  base = shlex.split(launch_with) or [sys.executable, '-m', 'alexnet_jax.main']
  return [base + [f'--config={config_path}',
                  f'--workdir={os.path.join(workdir_root, point_name(p))}']
          + extra + [f'--{k}={v}' for k, v in p.items()] for p in sweep]  # the point wins


def main(argv):
  sweep = load_sweep(FLAGS.sweep)
  for i, point in enumerate(sweep):
    try:
      check_point(FLAGS.config, point)
    except (AttributeError, KeyError, TypeError) as e:
      while e.args and isinstance(e.args[0], Exception):  # ml_collections wraps a KeyError
        e = e.args[0]
      message = ' '.join(str(e.args[0] if e.args else e).split())
      sys.exit(f'error: {FLAGS.sweep} point {i} {point}: {message}')
  config_path = config_flags.get_config_filename(FLAGS['config'])
  overrides = [f'--config.{k}={v}' for k, v in
               config_flags.get_override_values(FLAGS['config']).items()]  # shared by every point
  runs = commands(config_path, sweep, FLAGS.workdir_root, overrides + argv[1:], FLAGS.launch_with)
  path = os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')]))
  env = dict(os.environ, PYTHONPATH=path)
  failed = []
  for command in runs:
    print(shlex.join(command), flush=True)
    if not FLAGS.dry_run and subprocess.run(command, env=env, check=False).returncode:
      failed.append(command)
  for command in failed:
    print(f'failed: {shlex.join(command)}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
