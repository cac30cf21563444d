"""Regenerates docs/results.md: this project's small-scale reproduction of the paper's claims.

  python launch/results.py [--root=runs/results] [--docs=docs] [--cifar10_data=data/cifar10]

Runs (or, where ROOT already has them, reuses) the Figure 1 and ablation runs, then writes the
reports, the pictures and the page, printing each command. Figure 1: the learning-rate grid at
seed 0, then the other seeds at each activation's best rate; each run stops (SIGTERM: a checkpoint,
exit 0) once it reaches 25% training error. Ablations: configs/sweeps/ablations.py, 2 seeds.
With --cifar10_data (CIFAR-10's photos, DATA/train/<class>/), first the paper's CIFAR-10
experiments on them and AlexNet's: launch/cifar10.py's parts (CIFAR10_PARTS) and page
(DOCS/cifar10.md), their runs under ROOT/cifar10, reused and resumed in the same way; their
sections then open results.md. --page_only rewrites the page from the saved facts, running nothing.
"""
import argparse
import datetime
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'launch'))

from alexnet_jax import runs as runs_lib  # pylint: disable=wrong-import-position
from alexnet_jax.tools import report  # pylint: disable=wrong-import-position
import results_page  # pylint: disable=wrong-import-position  # launch/results_page.py

_spec = importlib.util.spec_from_file_location('sweep', os.path.join(REPO, 'launch', 'sweep.py'))
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)

FIGURE1_CONFIG, FIGURE1_SWEEP = 'configs/figure1.py', 'configs/sweeps/figure1.py'
ABLATION_CONFIG, ABLATION_SWEEP = 'configs/small_ablations.py', 'configs/sweeps/small_ablations.py'
TRAIN_ERROR = 0.25
ABLATION_SEEDS = (0, 1)
_ABSL_STAMP = re.compile(r'[IWEF]((?:0[1-9]|1[0-2])\d\d \d\d:\d\d:\d\d\.\d{6}) ')


# launch/cifar10.py's parts that --cifar10_data runs, in order (its 'speed' benchmark is left out:
# it needs the cores to itself).
CIFAR10_PARTS = ('figure1', 'difference', 'lrn', 'recipe', 'alexnet', 'ensemble', 'ablations',
                 'transfer')

def shell(command, **kwargs) -> subprocess.CompletedProcess:
  """Runs command in the repository; a failure stops this script with the tool's error line."""
  print('$ ' + shlex.join(command), flush=True)
  env = dict(os.environ, PYTHONPATH=REPO)
  result = subprocess.run(command, cwd=REPO, env=env, check=False, **kwargs)
  if result.returncode:
    said = [l for l in (result.stderr or '').splitlines() if l.startswith('error: ')]
    raise SystemExit(f'failed ({result.returncode}): {shlex.join(command)}' +
                     (f'\n{said[-1]}' if said else ''))
  return result


def train(config: str, point: dict, workdir: str, stop_at_error=None) -> None:
  """One point's run; skipped when done; with stop_at_error, stopped once it gets there."""
  run = runs_lib.read(workdir) if runs_lib.is_run(workdir) else None
  if run and (run.finished or (stop_at_error and runs_lib.steps_to(run.train, 'top1',
                                                                    1 - stop_at_error))):
    print(f'# reused {workdir}', flush=True)
    return
  launch(config, point, workdir, stop_at_error)


def launch(config: str, point: dict, workdir: str, stop_at_error=None) -> None:
  """Runs (or resumes) the point's training in workdir, its log in workdir.log; with
  stop_at_error, stopped (SIGTERM: a checkpoint, exit 0) once its training error gets there."""
  command = [sys.executable, '-m', 'alexnet_jax.main', f'--config={config}', f'--workdir={workdir}']
  command += [f'--{k}={v}' for k, v in point.items()]  # as launch/sweep.py runs a point
  os.makedirs(os.path.dirname(workdir), exist_ok=True)
  print('$ ' + shlex.join(command), flush=True)
  with open(workdir + '.log', 'a') as log:  # a resumed run's log goes on
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                               stdout=subprocess.DEVNULL, stderr=log)
    while process.poll() is None:
      time.sleep(2)
      if stop_at_error and runs_lib.is_run(workdir) and runs_lib.steps_to(
          runs_lib.read(workdir).train, 'top1', 1 - stop_at_error):
        process.send_signal(signal.SIGTERM)  # train.py saves and exits 0
        process.wait()
  if process.returncode:
    raise SystemExit(f'failed ({process.returncode}): {shlex.join(command)}; see {workdir}.log')


def _total_steps(config: str) -> int:
  name = os.path.splitext(os.path.basename(config))[0]
  return importlib.import_module(f'configs.{name}').get_config().total_steps


def run_seconds(root: str) -> tuple[float, int]:
  """(seconds, runs): each run's wall time from the first to the last timestamped line of its
  log (absl's 'I1130 00:08:36.165545'; Python's start-up before the first line is not counted)."""
  total, count = 0.0, 0
  for folder, _, files in os.walk(root):
    for name in files:
      if not name.endswith('.log'):
        continue
      with open(os.path.join(folder, name)) as f:
        stamps = [datetime.datetime.strptime(m.group(1), '%m%d %H:%M:%S.%f') for m in map(
            _ABSL_STAMP.match, f) if m]
      if stamps:
        total += (stamps[-1] - stamps[0]).total_seconds() % (365 * 86400)
        count += 1
  return total, count


def _points(activation=None, lr=None, seed=None):
  return [p for p in sweep.load_sweep(os.path.join(REPO, FIGURE1_SWEEP))
          if activation in (None, p['config.model.activation'])
          and lr in (None, p['config.optimizer.learning_rate'])
          and seed in (None, p['config.seed'])]


def _steps(root: str, point: dict):
  run = runs_lib.read(os.path.join(root, sweep.point_name(point)))
  return runs_lib.steps_to(run.train, 'top1', 1 - TRAIN_ERROR)


def figure1(root: str, docs: str) -> dict:
  """Grid at seed 0, best rate per activation (fewest steps; unreached count as the cap), seeds."""
  root = os.path.join(root, 'figure1')
  first_seed = min(p['config.seed'] for p in _points())
  best = {}
  for activation in ('relu', 'tanh'):
    grid = {}
    for point in _points(activation, seed=first_seed):
      train(FIGURE1_CONFIG, point, os.path.join(root, sweep.point_name(point)),
            TRAIN_ERROR)
      grid[point['config.optimizer.learning_rate']] = _steps(root, point)
    lr = min(grid, key=lambda k: (grid[k] is None, grid[k] or 0))
    for point in _points(activation, lr=lr):
      train(FIGURE1_CONFIG, point, os.path.join(root, sweep.point_name(point)),
            TRAIN_ERROR)
    best[activation] = {'lr': lr, 'grid': grid,
                        'steps': [_steps(root, p) for p in _points(activation, lr=lr)]}
  command = [sys.executable, '-m', 'alexnet_jax.tools.report', root,
             f'--train_error={TRAIN_ERROR}', f'--output_dir={os.path.join(docs, "figure1")}']
  shell(command, stdout=subprocess.DEVNULL)
  groups = runs_lib.group(runs_lib.find([root]))
  chosen = [g for g in groups for a, b in best.items()
            if g.config['model.activation'] == a and g.config['optimizer.learning_rate'] == b['lr']]
  results_page.plot_figure1(chosen, TRAIN_ERROR, os.path.join(docs, 'figure1.png'))
  return {'best': best, 'report': shlex.join(command[1:]),
          'caps': {a: _points(a)[0].get('config.total_steps', _total_steps(FIGURE1_CONFIG))
                   for a in best}}


def ablations(root: str, docs: str) -> dict:
  root = os.path.join(root, 'ablations')
  for seed in ABLATION_SEEDS:
    for point in sweep.load_sweep(os.path.join(REPO, ABLATION_SWEEP)):
      train(ABLATION_CONFIG, {**point, 'config.seed': seed},
            os.path.join(root, f'seed{seed}', sweep.point_name(point)))
  command = [sys.executable, '-m', 'alexnet_jax.tools.report', root,
             f'--output_dir={os.path.join(docs, "ablations")}']
  shell(command, stdout=subprocess.DEVNULL)
  groups = runs_lib.group(runs_lib.find([root]))
  first = runs_lib.baseline(groups)
  rows = report.summarise([first] + [g for g in groups if g is not first])
  for row, group in zip(rows, [first] + [g for g in groups if g is not first]):
    row['top1_by_seed'] = [r.eval[-1]['top1'] if r.eval else None for r in group.runs]
  return {'rows': rows, 'report': shlex.join(command[1:])}


def pictures(root: str, docs: str) -> dict:
  workdir = os.path.join(root, 'ablations', f'seed{ABLATION_SEEDS[0]}', 'baseline')
  commands = {
      'filters': ['-m', 'alexnet_jax.tools.filters', f'--workdir={workdir}',
                  f'--output={os.path.join(docs, "filters.png")}'],
      'neighbours': ['-m', 'alexnet_jax.tools.neighbours', f'--workdir={workdir}', '--queries=5', '--dpi=75',
                     f'--output={os.path.join(docs, "neighbours.png")}']}
  out = {}
  for name, args in commands.items():
    result = shell([sys.executable] + args, capture_output=True, text=True)
    said = [l for l in result.stderr.splitlines() if l.startswith('wrote ')]  # cli.wrote's line
    out[name] = {'command': shlex.join(['python'] + args), 'said': said[-1] if said else ''}
  return out


def _cifar10_facts(docs: str):
  path = os.path.join(docs, 'cifar10', 'facts.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _shown(value):
  """Facts as the page shows them: paths inside the repository relative to it (where its commands
  run), so that no machine's absolute path gets into docs/."""
  if isinstance(value, str):
    return value.replace(REPO + os.sep, '')
  if isinstance(value, dict):
    return {k: _shown(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_shown(v) for v in value]
  return value


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--root', default='runs/results', help='Workdirs of the runs (reused).')
  parser.add_argument('--docs', default='docs', help='Writes DOCS/results.md and DOCS/results/.')
  parser.add_argument('--cifar10_data', default='',
                      help='CIFAR-10 photos (DATA/train/<class>/): also run launch/cifar10.py.')
  parser.add_argument('--page_only', action='store_true',
                      help='Run nothing: rewrite DOCS/results.md from the facts saved by the '
                      'last full run and DOCS/cifar10/facts.json.')
  args = parser.parse_args()
  if args.page_only:
    with open(os.path.join(args.docs, 'results', 'facts.json')) as f:
      saved = json.load(f)
    results_page.write(saved, os.path.join(args.docs, 'results.md'), _cifar10_facts(args.docs))
    print(f'wrote {os.path.join(args.docs, "results.md")}')
    return
  if args.cifar10_data:
    shell([sys.executable, os.path.join(REPO, 'launch', 'cifar10.py'),
           f'--data={os.path.abspath(args.cifar10_data)}',
           f'--root={os.path.join(os.path.abspath(args.root), "cifar10")}',
           f'--docs={os.path.abspath(args.docs)}', *CIFAR10_PARTS, 'page'])
  # The runs start in the repository: paths given from elsewhere must mean the same there.
  args.root, args.docs = os.path.abspath(args.root), os.path.abspath(args.docs)
  os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.abspath(args.root),
                                                                  'jax_cache'))
  start, load = time.time(), os.getloadavg()[0]
  pictures_dir = os.path.join(args.docs, 'results')
  os.makedirs(pictures_dir, exist_ok=True)
  facts = {'figure1': figure1(args.root, pictures_dir),
           'ablations': ablations(args.root, pictures_dir),
           'pictures': pictures(args.root, pictures_dir)}
  seconds, count = run_seconds(args.root)
  facts.update(run_minutes=seconds / 60, runs=count)
  facts.update(root=args.root, minutes=(time.time() - start) / 60, load_start=load,
               load_end=os.getloadavg()[0], date=datetime.date.today().isoformat(),
               command=shlex.join(['python', 'launch/results.py'] + sys.argv[1:]))
  facts = _shown(facts)
  with open(os.path.join(pictures_dir, 'facts.json'), 'w') as f:
    json.dump(facts, f, indent=1, default=str)
  results_page.write(facts, os.path.join(args.docs, 'results.md'), _cifar10_facts(args.docs))
  print(f'wrote {os.path.join(args.docs, "results.md")} in {facts["minutes"]:.1f} min')


if __name__ == '__main__':
  main()
