"""Runs (or submits, or prints) one training command per point of a sweep, each in its own workdir.

  python launch/sweep.py --config=configs/default.py --sweep=configs/sweeps/ablations.py \
      --workdir_root=/runs/ablations [--dry_run] [--parallel=K] \
      [--submit=slurm [--max_parallel=K] [--sbatch_options='--gpus-per-node=8 --time=48:00:00']] \
      [--launch_with='launch/local_multiprocess.sh 2 4'] \
      [--config.KEY=VALUE ...] [-- other flags added to every run]

A sweep file's get_sweep() returns a list of {'config.KEY': value} dicts. Every point is checked
against the config before anything runs. Here, points run one after another, or K at a time with
--parallel=K (the local devices split between them: CUDA_VISIBLE_DEVICES, else the CPU's
xla_force_host_platform_device_count, N // K each); --submit=slurm submits one SLURM job array
instead, one array task per point, at most --max_parallel at once. Running or submitting a sweep
again skips its queued and running points and its finished ones (unless their flags changed), and
runs the rest, which resume from their checkpoints. The state (WORKDIR_ROOT/sweep.json,
sweep_logs/: alexnet_jax/sweeps.py) is what tools.report reads. Exits 1 if a point run here failed.
"""
import concurrent.futures
import contextlib
import copy
import glob
import importlib.util
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # config files import configs.default; alexnet_jax itself

from alexnet_jax import cluster  # pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import paths  # pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import sweeps  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
DEVICE_COUNT = re.compile(r'--xla_force_host_platform_device_count=(\d+)')


class UsageError(Exception):
  """A sweep that cannot run as asked: printed as one line that names the fix."""


def define_flags() -> None:
  """Only when run as a script, so that tests can import this file beside alexnet_jax.main."""
  config_flags.DEFINE_config_file('config', None, 'The base configs/*.py file.', lock_config=True)
  flags.DEFINE_string('sweep', None, 'A configs/sweeps/*.py file with get_sweep().')
  flags.DEFINE_string('workdir_root', None, 'Each point runs in WORKDIR_ROOT/<point name>.')
  flags.DEFINE_bool('dry_run', False, 'Print the commands instead of running them.')
  flags.DEFINE_string('launch_with', '', "Command that runs alexnet_jax.main's flags, e.g. "
                      "'launch/local_multiprocess.sh 2 4'; default: python -m alexnet_jax.main "
                      '(under srun with --submit=slurm).')
  flags.DEFINE_integer('parallel', 1, 'Points run here at once, the local devices split between '
                       'them.')
  flags.DEFINE_enum('submit', None, ['slurm'], 'Submit the points instead of running them here: '
                    'slurm: one job array (sbatch), one array task per point.')
  flags.DEFINE_integer('max_parallel', 0, 'With --submit=slurm: array tasks running at once '
                       '(--array=...%K); 0: as many as SLURM gives.')
  flags.DEFINE_string('sbatch_options', '', "With --submit=slurm: sbatch's options for every "
                      "point, e.g. '--gpus-per-node=8 --time=48:00:00' or, for points of 2 hosts, "
                      "'--nodes=2 --ntasks-per-node=1'.")
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


def point_flags(config_path: str, sweep: list[dict], workdir_root: str,
                extra: list[str]) -> list[list[str]]:
  """alexnet_jax.main's flags for each point: the shared ones, then the point's own (which win)."""
  return [[f'--config={config_path}', f'--workdir={os.path.join(workdir_root, point_name(p))}']
          + extra + [f'--{k}={v}' for k, v in p.items()] for p in sweep]


def commands(config_path: str, sweep: list[dict], workdir_root: str, extra: list[str],
             launch_with: str = '') -> list[list[str]]:
  base = shlex.split(launch_with) or [sys.executable, '-m', 'alexnet_jax.main']
  return [base + flags for flags in point_flags(config_path, sweep, workdir_root, extra)]


def device_groups(parallel: int, env) -> list[dict]:
  """The variables of each of `parallel` slots that split this machine's devices between them:
  CUDA_VISIBLE_DEVICES over the GPUs, else the CPU's virtual devices (XLA_FLAGS), N // K each."""
  if parallel == 1:
    return [{}]
  if 'CUDA_VISIBLE_DEVICES' in env:
    gpus = [g for g in env['CUDA_VISIBLE_DEVICES'].split(',') if g.strip()]
  elif shutil.which('nvidia-smi', path=env.get('PATH')):
    listing = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, check=False)
    gpus = [str(i) for i, line in enumerate(listing.stdout.splitlines()) if line.startswith('GPU')]
  else:
    gpus = []
  if gpus:
    if len(gpus) < parallel:
      raise UsageError(f'--parallel={parallel} needs a GPU per point and {len(gpus)} are visible; '
                       f'use --parallel={len(gpus)} or less.')
    per = len(gpus) // parallel
    return [{'CUDA_VISIBLE_DEVICES': ','.join(gpus[i * per:(i + 1) * per])}
            for i in range(parallel)]
  if any(glob.glob(pattern) for pattern in cluster.TPU_DEVICE_GLOBS):
    raise UsageError(f'--parallel={parallel} on a TPU VM: one process holds all its chips; run '
                     'the points one at a time here, or one slice per point.')
  xla_flags = env.get('XLA_FLAGS', '')
  found = DEVICE_COUNT.search(xla_flags)
  per = max(1, int(found.group(1)) // parallel) if found else 1
  flag = f'--xla_force_host_platform_device_count={per}'
  xla_flags = DEVICE_COUNT.sub(flag, xla_flags) if found else f'{xla_flags} {flag}'.strip()
  return [{'XLA_FLAGS': xla_flags}] * parallel


def _todo(root: str, flags: dict, state: dict) -> list[str]:
  """The points to run or submit: not queued or running already, and not finished with the same
  flags as now (a finished point given, say, more steps runs again, and resumes)."""
  submissions = state['submissions']
  queue_now = sweeps.squeue() if any(s['how'] == 'slurm' for s in submissions) else None
  before = {p['name']: p.get('flags') for p in state['points']}
  todo = []
  for name in flags:
    point = sweeps.point_state(root, name, submissions, queue_now)
    if point.state in ('queued', 'running') or (
        point.state == 'finished' and before.get(name) == flags[name]):
      print(f'skipped ({point.state}: {point.detail}): {name}', flush=True)
    else:
      todo.append(name)
  return todo


def run_here(root: str, names: list[str], runs: dict, env: dict, parallel: int,
             submission: dict) -> list[str]:
  """Runs the points, `parallel` at a time, each on its slot's devices; the names that failed."""
  slots = queue.Queue()
  for group in device_groups(parallel, env):
    slots.put(group)

  def run(name):
    group, log = slots.get(), sweeps.log_path(root, name)
    try:
      if parallel > 1:  # each point's output in its log, not mixed on the terminal
        print(f'started: {name} (log: {log})', flush=True)
        os.makedirs(os.path.dirname(log), exist_ok=True)
      else:
        print(shlex.join(runs[name]), flush=True)
      with open(log, 'a') if parallel > 1 else contextlib.nullcontext() as out:
        try:
          process = subprocess.Popen(runs[name], env={**env, **group}, stdout=out,
                                     stderr=subprocess.STDOUT if out else None)
        except OSError as e:
          raise UsageError(f'cannot start {runs[name][0]} ({e.strerror}); fix --launch_with.')
        with process:
          sweeps.note(root, name, state='running', submission=submission['id'], pid=process.pid)
          code = process.wait()
      sweeps.note(root, name, state='exited', submission=submission['id'], code=code)
      if parallel > 1:
        print(f'{"exited with status " + str(code) if code else "ended"}: {name}', flush=True)
      return code
    finally:
      slots.put(group)

  with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    codes = list(pool.map(run, names))
  return [name for name, code in zip(names, codes) if code]


def batch_script(root: str, names: list[str], runs: dict) -> str:
  """The job array's script: array task i runs point i in its own workdir, noted in its status."""
  logs = os.path.abspath(os.path.join(root, sweeps.LOGS))
  quote = lambda items: ' '.join(shlex.quote(item) for item in items)
  return f'''#!/bin/bash
# Written by launch/sweep.py: array task i runs point i of the sweep {shlex.quote(root)}.
#SBATCH --job-name=sweep
#SBATCH --output={logs}/slurm-%A_%a.out
#SBATCH --signal=TERM@300
set -u
cd {shlex.quote(os.getcwd())}
export PYTHONPATH={shlex.quote(REPO)}${{PYTHONPATH:+:$PYTHONPATH}}
names=({quote(names)})
commands=({quote(shlex.join(runs[name]) for name in names)})
name=${{names[$SLURM_ARRAY_TASK_ID]}}
logs={shlex.quote(logs)}
note() {{
  printf '{{"state": "%s", "submission": "%s", "code": %s, "host": "%s", "time": %s}}\\n' \\
    "$1" "$SLURM_ARRAY_JOB_ID" "$2" "$(hostname -s)" "$(date +%s.%N)" >> "$logs/$name.status"
}}
note running null
eval "${{commands[$SLURM_ARRAY_TASK_ID]}}" >> "$logs/$name.log" 2>&1
code=$?
note exited $code
exit $code
'''


def submit_slurm(root: str, names: list[str], todo: list[str], runs: dict, env: dict) -> dict:
  """Submits one job array of the points in todo; its submission record."""
  if not shutil.which('sbatch'):
    raise UsageError("--submit=slurm needs SLURM's sbatch, and none is on PATH: run on the "
                     "cluster's login node, or leave --submit out to run the points here.")
  if paths.is_remote(root):
    raise UsageError(f'--submit=slurm keeps the sweep state in --workdir_root, which must be a '
                     f'folder the nodes share, not {root}.')
  os.makedirs(os.path.join(root, sweeps.LOGS), exist_ok=True)
  script = os.path.join(root, 'sweep.sbatch')
  with open(script, 'w') as f:
    f.write(batch_script(root, names, runs))
  indices = ','.join(str(names.index(name)) for name in todo)
  limit = f'%{FLAGS.max_parallel}' if FLAGS.max_parallel else ''
  command = ['sbatch', '--parsable', f'--array={indices}{limit}',
             *shlex.split(FLAGS.sbatch_options), script]
  print(shlex.join(command), flush=True)
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    message = ' '.join(result.stderr.split()) or f'exit status {result.returncode}'
    raise UsageError(f'sbatch refused the array ({message}); fix --sbatch_options or the '
                     'cluster and submit again.')
  job = result.stdout.strip().split(';')[0]
  print(f'submitted job array {job}: {len(todo)} points, {FLAGS.max_parallel or "all"} at a '
        f'time; python -m alexnet_jax.tools.report {root} follows them', flush=True)
  return {'id': job, 'how': 'slurm', 'time': time.time(),
          'tasks': {name: names.index(name) for name in todo}}


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
  if FLAGS.parallel < 1:
    sys.exit(f'error: --parallel={FLAGS.parallel}: give the number of points to run at once, 1 '
             'or more.')
  if FLAGS.submit and FLAGS.parallel != 1:
    sys.exit('error: --parallel is for points run here; with --submit=slurm, --max_parallel=K '
             'runs K array tasks at once.')
  if (FLAGS.max_parallel or FLAGS.sbatch_options) and not FLAGS.submit:
    sys.exit('error: --max_parallel and --sbatch_options are for --submit=slurm; here, '
             '--parallel=K runs K points at once.')
  config_path = config_flags.get_config_filename(FLAGS['config'])
  overrides = [f'--config.{k}={v}' for k, v in
               config_flags.get_override_values(FLAGS['config']).items()]  # shared by every point
  launch_with = FLAGS.launch_with or (
      f'srun --kill-on-bad-exit=1 {shlex.quote(sys.executable)} -m alexnet_jax.main'
      if FLAGS.submit else '')
  root = FLAGS.workdir_root
  names = [point_name(p) for p in sweep]
  runs = dict(zip(names, commands(config_path, sweep, root, overrides + argv[1:], launch_with)))
  flags_now = dict(zip(names, point_flags(config_path, sweep, root, overrides + argv[1:])))
  if FLAGS.dry_run:
    for name in names:
      print(shlex.join(runs[name]))
    return 0
  path = os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')]))
  env = dict(os.environ, PYTHONPATH=path)
  try:
    state = sweeps.read(root)
    todo = _todo(root, flags_now, state)
    state['points'] = [{'name': n, 'point': p, 'flags': flags_now[n], 'command': runs[n]}
                       for n, p in zip(names, sweep)]
    if not todo:
      print(f'nothing to run: every point of {root} is finished, queued or running.')
      sweeps.write(root, state)
      return 0
    if FLAGS.submit:
      state['submissions'].append(submit_slurm(root, names, todo, runs, env))
      sweeps.write(root, state)
      return 0
    submission = {'id': f'local-{os.getpid()}-{time.time():.0f}', 'how': 'local',
                  'host': sweeps.host(), 'pid': os.getpid(),
                  'time': time.time(), 'tasks': {name: None for name in todo}}
    device_groups(FLAGS.parallel, env)  # a bad --parallel fails before anything is written
    state['submissions'].append(submission)
    sweeps.write(root, state)
    failed = run_here(root, names=todo, runs=runs, env=env, parallel=FLAGS.parallel,
                      submission=submission)
  except (UsageError, sweeps.SweepError) as e:
    sys.exit(f'error: {e}')
  for name in failed:
    print(f'failed: {shlex.join(runs[name])}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
