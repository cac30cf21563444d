"""The paper's CIFAR-10 experiments on real CIFAR-10, with Krizhevsky's own networks.

  tar xzf cifar10-train-jpeg.tar.gz -C data/cifar10
  python launch/cifar10.py --data=data/cifar10 figure1     # section 3.1, Figure 1
  python launch/cifar10.py --data=data/cifar10 lrn         # section 3.3, 13% against 11%
  python launch/cifar10.py --data=data/cifar10 page        # docs/cifar10.md from what has run

Runs (or reuses: a finished, stopped or diverged workdir under ROOT is not run again; an
interrupted one resumes from its checkpoint) and records what it measured in
DOCS/cifar10/facts.json, which `page` turns into DOCS/cifar10.md and its pictures.
figure1: configs/cifar10_18pct.py without weight decay, ReLU and tanh, each over a learning-rate
grid at seed 0 for --probe_epochs (the grid grows while its largest or smallest rate is the best); the
rate with the lowest training error then goes on to 25% error (the same run, resumed: the
learning rate is constant), with seeds 1 and 2 beside it. A run stops (SIGTERM: checkpoint, exit 0) once its training error, the mean over the
last log window of 50 steps, reaches 25%.
lrn: configs/cifar10_conv_local.py with and without its response normalizations, 3 seeds each,
one budget (--lrn_epochs), error on the 5,000 held-out photos (centre crop).
"""
import argparse
import json
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'launch'))

from alexnet_jax import runs as runs_lib  # pylint: disable=wrong-import-position
import results  # pylint: disable=wrong-import-position  # launch/results.py: train(), reuse

FIGURE1_CONFIG, LRN_CONFIG = 'configs/cifar10_18pct.py', 'configs/cifar10_conv_local.py'
TRAIN_ERROR = 0.25
TRAIN_EXAMPLES, BATCH = 45_000, 128
STEPS_PER_EPOCH = TRAIN_EXAMPLES // BATCH
LEARNING_RATES = (0.003, 0.01, 0.03)  # grown by x3 while the largest is the fastest
MAX_EPOCHS = {'relu': 30, 'tanh': 60}
SEEDS = (0, 1, 2)


def _facts_path(docs):
  return os.path.join(docs, 'cifar10', 'facts.json')


def _load_facts(docs) -> dict:
  path = _facts_path(docs)
  return json.load(open(path)) if os.path.exists(path) else {}


def _save_facts(docs, facts) -> None:
  os.makedirs(os.path.dirname(_facts_path(docs)), exist_ok=True)
  with open(_facts_path(docs), 'w') as f:
    json.dump(facts, f, indent=1)


BUDGET_KEYS = ('config.num_epochs', 'config.optimizer.decay_every_epochs')  # not in the names


def run(config: str, point: dict, root: str, data: str, stop_at_error=None) -> runs_lib.Run:
  """Runs the point in ROOT/<its name, budget keys left out> on the photos in data.

  A run given a longer budget resumes where it stopped; a diverged run is a result (never
  reached), not a failure.
  """
  workdir = os.path.join(root, results.sweep.point_name(
      {k: v for k, v in point.items() if k not in BUDGET_KEYS}))
  flags = {**point, 'config.data.name': f'folder:{os.path.abspath(data)}',
          'config.checkpoint.every_steps': STEPS_PER_EPOCH}
  done = runs_lib.read(workdir) if runs_lib.is_run(workdir) else None
  if done and (done.diverged or
               done.last_step >= int(point['config.num_epochs'] * STEPS_PER_EPOCH) or
               (stop_at_error and epochs_to_error(done) is not None)):
    print(f'# reused {workdir} (diverged, at the line, or past {point["config.num_epochs"]} '
          'epochs)', flush=True)
  else:
    try:
      results.launch(config, flags, workdir, stop_at_error)
    except SystemExit:
      if not (runs_lib.is_run(workdir) and runs_lib.read(workdir).diverged):
        raise
  return runs_lib.read(workdir)


def epochs_to_error(run_: runs_lib.Run):
  steps = runs_lib.steps_to(run_.train, 'top1', 1 - TRAIN_ERROR)
  return None if steps is None else steps / STEPS_PER_EPOCH


def error_at(run_: runs_lib.Run, epochs: float):
  """Training error at the last log point within `epochs` (1 when diverged or not there)."""
  rows = [r for r in run_.train if r['step'] <= epochs * STEPS_PER_EPOCH]
  if run_.diverged or not rows or not math.isfinite(rows[-1]['loss']):
    return 1.0
  return 1 - rows[-1]['top1']


def figure1(args) -> dict:
  """Per activation: PROBE_EPOCHS at each rate of the grid (seed 0); the rate with the lowest
  training error then (the fastest so far) runs on to 25% error, and seeds 1 and 2 beside it."""
  root = os.path.join(args.root, 'figure1')
  out = {}
  for activation in ('relu', 'tanh'):
    point = lambda lr, seed, epochs: {
        'config.model.activation': activation, 'config.optimizer.learning_rate': lr,
        'config.seed': seed, 'config.optimizer.weight_decay': 0.0, 'config.eval_every_steps': 0,
        'config.num_epochs': float(epochs)}
    probe, rates = {}, sorted(LEARNING_RATES)
    while rates:
      lr = rates.pop(0)
      probe[lr] = error_at(run(FIGURE1_CONFIG, point(lr, 0, args.probe_epochs), root, args.data,
                               TRAIN_ERROR), args.probe_epochs)
      best = min(probe, key=probe.get)
      if not rates and best == max(probe) and best < 0.1:
        rates.append(round(best * 3, 6))  # the largest rate is the fastest: try a larger one
      elif not rates and best == min(probe) and best > 1e-4:
        rates.append(round(best / 3, 6))  # the smallest is: try a smaller one
    lr = min(probe, key=probe.get)
    seeds = {seed: run(FIGURE1_CONFIG, point(lr, seed, MAX_EPOCHS[activation]), root, args.data,
                       TRAIN_ERROR) for seed in SEEDS}
    out[activation] = {
        'probe_epochs': args.probe_epochs, 'probe_error': {str(k): v for k, v in probe.items()},
        'lr': lr, 'cap': MAX_EPOCHS[activation],
        'epochs': {str(s): epochs_to_error(r) for s, r in seeds.items()},
        'workdirs': {str(s): os.path.relpath(r.path, args.root) for s, r in seeds.items()},
        'curves': {str(s): [(row['step'] / STEPS_PER_EPOCH, 1 - row['top1']) for row in r.train]
                   for s, r in seeds.items()}}
  return out


def lrn(args) -> dict:
  root = os.path.join(args.root, f'lrn_{args.lrn_epochs}ep')
  out = {'epochs': args.lrn_epochs, 'decay_at': args.lrn_epochs - 1, 'runs': {}}
  for seed in SEEDS:
    for flag in (True, False):
      p = {'config.model.lrn': flag, 'config.seed': seed,
           'config.num_epochs': float(args.lrn_epochs), 'config.eval_every_steps': 0,
           'config.optimizer.decay_every_epochs': float(args.lrn_epochs - 1)}
      result = run(LRN_CONFIG, p, root, args.data)
      out['runs'][f'lrn={flag},seed={seed}'] = {
          'lrn': flag, 'seed': seed, 'error': 1 - result.eval[-1]['top1'],
          'top5_error': 1 - result.eval[-1]['top5'], 'train_error': 1 - result.train[-1]['top1'],
          'workdir': os.path.relpath(result.path, args.root)}
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('parts', nargs='+', choices=('figure1', 'lrn', 'page'))
  parser.add_argument('--data', default='data/cifar10', help='CIFAR-10 photos: DATA/train/<class>/.')
  parser.add_argument('--root', default='runs/cifar10', help='Workdirs of the runs (reused).')
  parser.add_argument('--docs', default='docs', help='Writes DOCS/cifar10.md and DOCS/cifar10/.')
  parser.add_argument('--lrn_epochs', type=int, default=4, help='The budget of each lrn run.')
  parser.add_argument('--probe_epochs', type=float, default=2.0,
                      help='figure1: epochs at each learning rate of the grid.')
  args = parser.parse_args()
  os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.abspath(args.root),
                                                                  'jax_cache'))
  if not os.path.isdir(os.path.join(args.data, 'train')):
    raise SystemExit(f'--data={args.data} holds no train/ folder: unpack CIFAR-10 there with '
                     f'tar xzf cifar10-train-jpeg.tar.gz -C {args.data}.')
  for part in args.parts:
    if part == 'page':
      import cifar10_page  # pylint: disable=g-import-not-at-top  # launch/cifar10_page.py
      cifar10_page.write(_load_facts(args.docs), args.docs)
      continue
    result = figure1(args) if part == 'figure1' else lrn(args)
    facts = _load_facts(args.docs)  # re-read: another part may have written meanwhile
    facts[part] = result
    _save_facts(args.docs, facts)
    print(f'wrote {_facts_path(args.docs)} ({part})', flush=True)


if __name__ == '__main__':
  main()
