"""The paper's CIFAR-10 experiments on real CIFAR-10, with Krizhevsky's own networks.

  tar xzf cifar10-train-jpeg.tar.gz -C data/cifar10
  python launch/cifar10.py --data=data/cifar10 figure1     # section 3.1, Figure 1
  python launch/cifar10.py --data=data/cifar10 difference  # Figure 1 again with one change
  python launch/cifar10.py --data=data/cifar10 lrn         # section 3.3, 13% against 11%
  python launch/cifar10.py speed                            # both networks' step beside PyTorch
  python launch/cifar10.py --data=data/cifar10 alexnet     # configs/cifar10.py: AlexNet itself
  python launch/cifar10.py --data=data/cifar10 ensemble    # 3 seeds of it and their ensemble
  python launch/cifar10.py --data=data/cifar10 page        # docs/cifar10.md from what has run

Runs (or reuses: a finished, stopped or diverged workdir under ROOT is not run again; an
interrupted one resumes from its checkpoint) and records what it measured in
DOCS/cifar10/facts.json, which `page` turns into DOCS/cifar10.md and its pictures.
figure1: configs/cifar10_18pct.py without weight decay, ReLU and tanh, each over a learning-rate
grid at seed 0 for --probe_epochs (the grid grows while its largest or smallest rate is the best); the
rate with the lowest training error then goes on to 25% error (the same run, resumed: the
learning rate is constant), with seeds 1 and 2 beside it (the three at once). A run stops (SIGTERM: checkpoint, exit 0) once its training error, the mean over the
last log window of 50 steps, reaches 25%.
lrn: configs/cifar10_conv_local.py with and without its response normalizations, 3 seeds each,
one budget (--lrn_epochs), error on the 5,000 held-out photos (centre crop).
speed: tools/benchmark (train and forward steps, alternated rounds) and tools/layer_profile of both
networks beside their PyTorch twins (tools/torch_nets.py), on the idle machine: run it alone.
difference: Figure 1's seed-0 runs again with one change (--difference), for a few epochs, to
test what makes the tanh / ReLU ratio differ from the paper's.
alexnet: the paper's AlexNet (configs/cifar10.py, its own budget), seed 0: held-out accuracy with
the centre crop and with 10 crops, its training time, conv1's kernels and the FC7 nearest
neighbours of held-out photos (the paper's Figures 3 and 4) in DOCS/cifar10/.
ensemble: configs/cifar10.py at seeds 0, 1 and 2 (the two runs beside each other) and the mean of
their softmax outputs (tools.evaluate with three --workdir), 1 and 10 crops: the paper's Table 2,
one CNN against several, at small scale.
"""
import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'launch'))

from alexnet_jax import runs as runs_lib  # pylint: disable=wrong-import-position
import results  # pylint: disable=wrong-import-position  # launch/results.py: train(), reuse

FIGURE1_CONFIG, LRN_CONFIG = 'configs/cifar10_18pct.py', 'configs/cifar10_conv_local.py'
ALEXNET_CONFIG = 'configs/cifar10.py'
TRAIN_ERROR = 0.25
TRAIN_EXAMPLES, BATCH = 45_000, 128
LOG_EVERY = 50  # the configs' log_every_steps: a row at another step averages fewer steps (a run's
                # last row, or one written when it was stopped): those are left out of every measure
STEPS_PER_EPOCH = TRAIN_EXAMPLES // BATCH
LEARNING_RATES = (0.003, 0.01, 0.03)  # grown by x3 while the largest is the fastest
MAX_EPOCHS = {'relu': 30, 'tanh': 60}  # the paper's tanh crossed 25% near 36 epochs
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


def run(config: str, point: dict, root: str, args, stop_at_error=None):
  """The point's run in ROOT/<its name, budget keys left out> on the photos in args.data: reused,
  resumed with a longer budget, or started; with args.no_run, what is there (None if nothing).

  A diverged run is a result (never reached), not a failure.
  """
  workdir = os.path.join(root, results.sweep.point_name(
      {k: v for k, v in point.items() if k not in BUDGET_KEYS}))
  done = runs_lib.read(workdir) if runs_lib.is_run(workdir) else None
  if args.no_run:
    return done
  flags = {**point, 'config.data.name': f'folder:{os.path.abspath(args.data)}',
           'config.checkpoint.every_steps': STEPS_PER_EPOCH}
  if done and (diverged(done) or
               done.last_step >= int(point['config.num_epochs'] * STEPS_PER_EPOCH) or
               (stop_at_error and epochs_to_error(done) is not None)):
    print(f'# reused {workdir} (diverged, at the line, or past {point["config.num_epochs"]} '
          'epochs)', flush=True)
  else:
    try:
      results.launch(config, flags, workdir, stop_at_error)
    except SystemExit:
      if not (runs_lib.is_run(workdir) and diverged(runs_lib.read(workdir))):
        raise
  return runs_lib.read(workdir)


def _finished(result, epochs: float) -> bool:
  """Whether run()'s result trained its epochs and evaluated (None: not there, --no_run)."""
  return bool(result is not None and result.eval and
              result.last_step >= int(epochs * STEPS_PER_EPOCH))


def diverged(run_: runs_lib.Run) -> bool:
  """runs.py's verdict, or the run's log ends in train.py's non-finite error (a divergence
  between two checkpoints leaves no other mark)."""
  log = run_.path + '.log'
  if run_.diverged:
    return True
  if not os.path.exists(log):
    return False
  with open(log, errors='replace') as f:
    tail = f.read()[-4000:]
  return 'the last good checkpoint is kept' in tail


def _full_windows(run_: runs_lib.Run) -> list[dict]:
  return [row for row in run_.train if row['step'] % LOG_EVERY == 0]


def epochs_to_error(run_: runs_lib.Run):
  steps = runs_lib.steps_to(_full_windows(run_), 'top1', 1 - TRAIN_ERROR)
  return None if steps is None else steps / STEPS_PER_EPOCH


def error_at(run_: runs_lib.Run, epochs: float):
  """Training error at the last log point within `epochs` (1 when diverged or not there)."""
  rows = [r for r in _full_windows(run_) if r['step'] <= epochs * STEPS_PER_EPOCH]
  if diverged(run_) or not rows or not math.isfinite(rows[-1]['loss']):
    return 1.0
  return 1 - rows[-1]['top1']


def figure1(args) -> dict:
  """Per activation: PROBE_EPOCHS at each rate of the grid (seed 0); the rate with the lowest
  training error then (the fastest so far) runs on to 25% error, and seeds 1 and 2 beside it."""
  root = os.path.join(args.root, 'figure1')
  out = {}
  for activation in args.activations.split(','):
    point = lambda lr, seed, epochs: {
        'config.model.activation': activation, 'config.optimizer.learning_rate': lr,
        'config.seed': seed, 'config.optimizer.weight_decay': 0.0, 'config.eval_every_steps': 0,
        'config.num_epochs': float(epochs)}
    probe, rates = {}, sorted(LEARNING_RATES)
    while rates:
      lr = rates.pop(0)
      probed = run(FIGURE1_CONFIG, point(lr, 0, args.probe_epochs), root, args, TRAIN_ERROR)
      if probed is None or probed.last_step < int(args.probe_epochs * STEPS_PER_EPOCH) - LOG_EVERY:
        continue  # --no_run: not probed (yet)
      probe[lr] = error_at(probed, args.probe_epochs)
      best = min(probe, key=probe.get)
      if not rates and best == max(probe) and best < 0.1:
        rates.append(round(best * 3, 6))  # the largest rate is the fastest: try a larger one
      elif not rates and best == min(probe) and best > 1e-4:
        rates.append(round(best / 3, 6))  # the smallest is: try a smaller one
    if not probe:
      continue
    lr = min(probe, key=probe.get)
    with concurrent.futures.ThreadPoolExecutor(len(SEEDS)) as pool:  # the seeds side by side
      seeds = dict(zip(SEEDS, pool.map(lambda seed: run(
          FIGURE1_CONFIG, point(lr, seed, MAX_EPOCHS[activation]), root, args, TRAIN_ERROR),
                                       SEEDS)))
    seeds = {seed: r for seed, r in seeds.items() if r is not None and r.train}
    out[activation] = {
        'probe_epochs': args.probe_epochs, 'probe_error': {str(k): v for k, v in probe.items()},
        'lr': lr, 'cap': MAX_EPOCHS[activation],
        'epochs': {str(s): epochs_to_error(r) for s, r in seeds.items()},
        # a seed not there (yet): how far it trained, a lower bound on its epochs to the line
        'epochs_run': {str(s): r.last_step / STEPS_PER_EPOCH for s, r in seeds.items()},
        'workdirs': {str(s): os.path.relpath(r.path, args.root) for s, r in seeds.items()},
        'curves': {str(s): [(row['step'] / STEPS_PER_EPOCH, 1 - row['top1'])
                            for row in _full_windows(r)] for s, r in seeds.items()}}
  return out


def difference(args) -> dict:
  """Figure 1 with one difference (--difference, a config override), seed 0, each activation at the
  rate figure1 chose, --difference_epochs each: curves to set beside figure1's seed 0."""
  chosen = _load_facts(args.docs)['figure1']
  key, value = args.difference.removeprefix('--').split('=')
  value = {'True': True, 'False': False}.get(value, value)
  out = {'override': args.difference, 'epochs': args.difference_epochs, 'curves': {}}
  for activation in ('relu', 'tanh'):
    point = {'config.model.activation': activation,
             'config.optimizer.learning_rate': chosen[activation]['lr'], 'config.seed': 0,
             'config.optimizer.weight_decay': 0.0, 'config.eval_every_steps': 0,
             'config.num_epochs': float(args.difference_epochs), key: value}
    result = run(FIGURE1_CONFIG, point, os.path.join(args.root, 'figure1_difference'), args,
                 TRAIN_ERROR)
    if result is not None:
      out['curves'][activation] = [(row['step'] / STEPS_PER_EPOCH, 1 - row['top1'])
                                   for row in _full_windows(result)]
  return out


def lrn(args) -> dict:
  root = os.path.join(args.root, f'lrn_{args.lrn_epochs}ep')
  out = {'epochs': args.lrn_epochs, 'decay_at': args.lrn_epochs - 1, 'runs': {}}
  for seed in SEEDS:
    for flag in (True, False):
      p = {'config.model.lrn': flag, 'config.seed': seed,
           'config.num_epochs': float(args.lrn_epochs), 'config.eval_every_steps': 0,
           'config.optimizer.decay_every_epochs': float(args.lrn_epochs - 1)}
      result = run(LRN_CONFIG, p, root, args)
      if result is None or not result.eval:  # --no_run: not finished (yet)
        continue
      out['runs'][f'lrn={flag},seed={seed}'] = {
          'lrn': flag, 'seed': seed, 'error': 1 - result.eval[-1]['top1'],
          'top5_error': 1 - result.eval[-1]['top5'], 'train_error': 1 - _full_windows(result)[-1]['top1'],
          'workdir': os.path.relpath(result.path, args.root)}
  return out


def training_seconds(run_: runs_lib.Run) -> float:
  """Seconds spent in the train steps: each log row's steps at its images/s (evaluations, start-up
  and the time between a stop and its resume left out)."""
  total, previous, batch = 0.0, 0, run_.config.get('data.batch_size', BATCH)
  for row in run_.train:
    total += (row['step'] - previous) * batch / row['images_per_sec']
    previous = row['step']
  return total


def alexnet(args) -> dict:
  """configs/cifar10.py at seed 0 with its own budget; evaluated with 1 and 10 crops; Figures 3/4."""
  sys.path.insert(0, REPO)
  from configs import cifar10  # pylint: disable=g-import-not-at-top
  epochs = cifar10.get_config().num_epochs
  result = run(ALEXNET_CONFIG, {'config.seed': 0, 'config.num_epochs': epochs},
               os.path.join(args.root, 'alexnet'), args)
  if not _finished(result, epochs):
    return {}  # --no_run: not finished (yet)
  # The tools see it as runs/cifar10_alexnet, the README's workdir: their pictures' titles and the
  # commands shown name that, not this machine's folders.
  shown = os.path.join('runs', 'cifar10_alexnet')
  link = os.path.join(REPO, shown)
  if os.path.islink(link) and os.path.realpath(link) != os.path.realpath(result.path):
    os.remove(link)  # a link to another --root's run
  elif os.path.exists(link) and not os.path.islink(link):
    raise SystemExit(f'{link} is a run of its own; move it away so that {shown} can name '
                     f'{result.path}.')
  if not os.path.islink(link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(result.path, link)
  out = {'epochs': epochs, 'workdir': os.path.relpath(result.path, args.root),
         'train_seconds': training_seconds(result), 'final_train_top1': _full_windows(result)[-1]['top1'],
         'dropout': result.config['model.dropout_rate'],
         'eval': {}, 'pictures': {}}
  for crops in (1, 10):
    said = results.shell([sys.executable, '-m', 'alexnet_jax.tools.evaluate',
                          f'--workdir={shown}', f'--config.data.eval_crops={crops}'],
                         capture_output=True, text=True)
    out['eval'][str(crops)] = json.loads(said.stdout.splitlines()[-1])
  folder = os.path.join(args.docs, 'cifar10')
  for name, tool, extra in (('filters', 'filters', []),
                            # the kernels' part within the band of the 32-px photos scaled up
                            ('filters_in_band', 'filters', ['--photo_px=32']),
                            ('neighbours', 'neighbours', ['--queries=6', '--dpi=80'])):
    path = os.path.join(folder, f'alexnet_{name}.png')
    command = ['-m', f'alexnet_jax.tools.{tool}', f'--workdir={shown}',
               f'--output={os.path.relpath(path, REPO)}', *extra]
    said = results.shell([sys.executable] + command, capture_output=True, text=True)
    out['pictures'][name] = {'path': os.path.relpath(path, args.docs),
                             'command': ' '.join(['python'] + command),
                             'said': said.stdout.strip()}
  return out


RECIPE_EPOCHS = 3.0
# (learning rate, dropout), in the order they run: without dropout first (the 12-epoch run with
# dropout trained 76.5% of its windows against 75.6% held out: not overfitting).
RECIPE_GRID = ((0.01, 0.0), (0.02, 0.0), (0.01, 0.5), (0.02, 0.5))
# Then the training window at the grid's chosen point (lr 0.01, no dropout): data.resize_ratio 1
# trains on the whole 32-px photo (flips, no shift) and evaluates it all; 32/30 on 30-px windows.
# The config's, the paper's 256/224, takes 28 of the 32 pixels and evaluates the centre 28.
RECIPE_RATIOS = (1.0, round(32 / 30, 4))


def recipe(args) -> dict:
  """configs/cifar10.py's learning rate and dropout, a 2x2 grid at seed 0 over RECIPE_EPOCHS (the
  cosine decay over that budget), then RECIPE_RATIOS' windows: held-out top-1 at the end of each."""
  out = {'epochs': RECIPE_EPOCHS, 'runs': {}}
  points = [(lr, dropout, None) for lr, dropout in RECIPE_GRID]
  points += [(0.01, 0.0, ratio) for ratio in RECIPE_RATIOS]
  for lr, dropout, ratio in points:
    point = {'config.optimizer.learning_rate': lr, 'config.model.dropout_rate': dropout,
             **({'config.data.resize_ratio': ratio} if ratio else {}),
             'config.seed': 0, 'config.num_epochs': RECIPE_EPOCHS}
    result = run(ALEXNET_CONFIG, point, os.path.join(args.root, 'recipe'), args)
    if not _finished(result, RECIPE_EPOCHS):
      continue
    name = f'lr={lr},dropout={dropout}' + (f',resize_ratio={ratio}' if ratio else '')
    out['runs'][name] = {
        'lr': lr, 'dropout': dropout, 'resize_ratio': result.config['data.resize_ratio'],
        'top1': result.eval[-1]['top1'],
        'train_top1': _full_windows(result)[-1]['top1'], 'train_seconds': training_seconds(result),
        'workdir': os.path.relpath(result.path, args.root)}
  return out


ABLATION_EPOCHS = 2.0
ABLATION_SEEDS = (0, 1)
# configs/cifar10.py has no dropout (recipe()'s grid): the sweep's no-dropout point would be its
# baseline again, so here that point puts the paper's dropout back in.
ABLATION_INSTEAD = {(('config.model.dropout_rate', 0.0),): {'config.model.dropout_rate': 0.5}}


def ablations(args) -> dict:
  """configs/sweeps/ablations.py's points on configs/cifar10.py, ABLATION_SEEDS each, one budget of
  ABLATION_EPOCHS (the cosine decay over it): held-out top-1 (centre crop) and training top-1."""
  sys.path.insert(0, os.path.join(REPO, 'configs', 'sweeps'))
  import ablations as sweep_points  # pylint: disable=g-import-not-at-top  # configs/sweeps/
  out = {'epochs': ABLATION_EPOCHS, 'seeds': list(ABLATION_SEEDS), 'runs': {}}
  root = os.path.join(args.root, f'ablations_{ABLATION_EPOCHS:g}ep')
  for change in sweep_points.get_sweep():
    change = ABLATION_INSTEAD.get(tuple(change.items()), change)
    for seed in ABLATION_SEEDS:
      point = {**change, 'config.seed': seed, 'config.num_epochs': ABLATION_EPOCHS}
      result = run(ALEXNET_CONFIG, point, root, args)
      if not _finished(result, ABLATION_EPOCHS):
        continue
      name = ','.join(f'{k.removeprefix("config.")}={v}' for k, v in change.items()) or 'baseline'
      out['runs'][f'{name},seed={seed}'] = {
          'change': name, 'seed': seed, 'top1': result.eval[-1]['top1'],
          'top5': result.eval[-1]['top5'], 'train_top1': _full_windows(result)[-1]['top1'],
          'train_seconds': training_seconds(result),
          'workdir': os.path.relpath(result.path, args.root)}
  return out


TRANSFER_CLASSES = ('cat', 'dog')
TRANSFER_PER_CLASS = 500
PRETRAIN_EPOCHS = 6.0
SCRATCH_EPOCHS = 40.0  # of the 1,000 photos: 40,000 images, more than the fine-tuning sees
TRANSFER_SEEDS = (0, 1, 2)
# configs/finetune.py as it is (the classifier, FC6-FC8, at lr 0.001: made for torchvision's
# ImageNet weights), then with the learning rate of the runs it starts from; every layer at both.
FINETUNE_VARIANTS = (('finetune', {}),
                     ('finetune_lr0.01', {'config.optimizer.learning_rate': 0.01}),
                     ('finetune_all', {'config.optimizer.trainable': 'all'}),
                     ('finetune_all_lr0.01', {'config.optimizer.learning_rate': 0.01,
                                              'config.optimizer.trainable': 'all'}))


def _link(source: str, target: str) -> None:
  os.makedirs(os.path.dirname(target), exist_ok=True)
  if not os.path.lexists(target):
    os.symlink(source, target)


def transfer_folders(data: str, root: str) -> tuple[str, str]:
  """(eight, catdog): folders of links to the photos in data. eight/train/<class>/: every photo of
  the 8 classes that are not cat or dog. catdog/train/{cat,dog}/: the first TRANSFER_PER_CLASS cats
  and dogs of configs/cifar10.py's training split ('train[:90%]'); catdog/val/{cat,dog}/: every cat
  and dog of its held-out split ('train[90%:]'), so that no held-out photo was seen in any run."""
  sys.path.insert(0, REPO)
  from alexnet_jax import data_sources  # pylint: disable=g-import-not-at-top
  eight, catdog = os.path.join(root, 'eight'), os.path.join(root, 'catdog')
  split = data_sources._folder_split  # pylint: disable=protected-access  # the runs' own split
  names, held_in = split(data, 'train[:90%]')
  _, held_out = split(data, 'train[90%:]')
  taken = {name: 0 for name in TRANSFER_CLASSES}
  for path, label in held_in:
    name = names[label]
    if name not in TRANSFER_CLASSES:
      continue
    if taken[name] < TRANSFER_PER_CLASS:
      taken[name] += 1
      _link(path, os.path.join(catdog, 'train', name, os.path.basename(path)))
  for path, label in held_out:
    if names[label] in TRANSFER_CLASSES:
      _link(path, os.path.join(catdog, 'val', names[label], os.path.basename(path)))
  for path, label in held_in + held_out:
    if names[label] not in TRANSFER_CLASSES:
      _link(path, os.path.join(eight, 'train', names[label], os.path.basename(path)))
  return eight, catdog


def transfer_commands(eight: str, catdog: str, pretrained: str) -> dict:
  """{'pretrain', 'finetune', 'scratch'}: each a (config, overrides) of the cats-and-dogs runs."""
  catdog_data = {'config.data.name': f'folder:{catdog}', 'config.data.train_split': 'train',
                 'config.data.eval_split': 'validation', 'config.model.num_classes': 2}
  # configs/finetune.py is torchvision's 224-px layout: the overrides make it configs/cifar10.py's
  # network and input (the parameters' shapes must match the pretrained run's).
  as_cifar10 = {'config.model.variant': 'paper', 'config.model.pooled_size': 1,
                'config.data.image_size': 64, 'config.data.pca_lighting_std': 0.1}
  # configs/cifar10.py's runs here keep the dropout of the paper (its recipe when they ran).
  paper_dropout = {'config.model.dropout_rate': 0.5}
  return {
      'pretrain': ('configs/cifar10.py', {'config.data.name': f'folder:{eight}',
                                          'config.model.num_classes': 8,
                                          'config.num_epochs': PRETRAIN_EPOCHS, **paper_dropout}),
      'finetune': ('configs/finetune.py', {**catdog_data, **as_cifar10,
                                           'config.init_from': pretrained}),
      'scratch': ('configs/cifar10.py', {**catdog_data, 'config.num_epochs': SCRATCH_EPOCHS,
                                         'config.log_every_steps': 8,
                                         'config.optimizer.warmup_steps': 30, **paper_dropout}),
  }


def transfer(args) -> dict:
  """The README's 'Classify your own photos' on real photos: AlexNet trained on the 8 classes that
  are not cat or dog, fine-tuned with configs/finetune.py on 500 cats and 500 dogs, against the same
  1,000 photos trained from scratch (configs/cifar10.py); both on the held-out cats and dogs."""
  eight, catdog = transfer_folders(args.data, os.path.join(args.root, 'transfer_data'))
  root = os.path.join(args.root, 'transfer')
  commands = transfer_commands(eight, catdog, '')
  config, flags_ = commands['pretrain']
  pretrained = _run_in(config, {**flags_, 'config.seed': 0}, os.path.join(root, 'pretrain'), args)
  out = {'per_class': TRANSFER_PER_CLASS, 'pretrain_epochs': PRETRAIN_EPOCHS,
         'scratch_epochs': SCRATCH_EPOCHS, 'runs': {}}
  if pretrained is None or not pretrained.finished:
    return out
  out['pretrain'] = {'top1': pretrained.eval[-1]['top1'], 'workdir': os.path.relpath(
      pretrained.path, args.root), 'train_seconds': training_seconds(pretrained),
                     'images': pretrained.last_step * pretrained.config['data.batch_size'],
                     'command': ' '.join(['python -m alexnet_jax.main', f'--config={config}',
                                          '--workdir=PRETRAINED'] + [
                                              f'--{k}={v}'.replace(eight, 'EIGHT')
                                              for k, v in {**flags_, 'config.seed': 0}.items()])}
  commands = transfer_commands(eight, catdog, pretrained.path)
  finetune_config, finetune_flags = commands['finetune']
  kinds = {kind: (finetune_config, {**finetune_flags, **extra}) for kind, extra in FINETUNE_VARIANTS}
  kinds['scratch'] = commands['scratch']
  for kind, (config, flags_) in kinds.items():
    for seed in TRANSFER_SEEDS:
      result = _run_in(config, {**flags_, 'config.seed': seed},
                       os.path.join(root, f'{kind}_seed{seed}'), args)
      if result is None or not result.finished:
        continue
      out['runs'][f'{kind},seed={seed}'] = {
          'kind': kind, 'seed': seed, 'top1': result.eval[-1]['top1'],
          'count': result.eval[-1].get('count'), 'steps': result.last_step,
          'images': result.last_step * result.config['data.batch_size'],
          'train_seconds': training_seconds(result),
          'workdir': os.path.relpath(result.path, args.root),
          # as a user types it: the folders as CATDOG (train/{cat,dog}/, val/{cat,dog}/)
          'command': ' '.join(['python -m alexnet_jax.main', f'--config={config}',
                               '--workdir=WORKDIR'] + [f'--{k}={v}'.replace(catdog, 'CATDOG')
                                                       for k, v in flags_.items()
                                                       if k != 'config.init_from'])}
  out['probes'] = probes(args, catdog, pretrained.path, os.path.join(root, 'scratch_seed0'))
  return out


PROBE_LAYERS = 'conv5,fc6,fc7'


def probes(args, catdog: str, pretrained: str, scratch: str) -> dict:
  """Linear probes (tools.probe) of conv5, FC6 and FC7 on the cat/dog photos: the 8-class run's
  layers, the same network freshly initialised, and a from-scratch cat/dog run's (its own training
  photos: an upper reference)."""
  out = {}
  for name, workdir, shown, extra in (('pretrained', pretrained, 'PRETRAINED', []),
                                      ('random_init', pretrained, 'PRETRAINED', ['--random_init']),
                                      ('scratch_seed0', scratch, 'SCRATCH', [])):
    if not runs_lib.is_run(workdir):
      continue
    command = ['-m', 'alexnet_jax.tools.probe', f'--workdir={workdir}', f'--data=folder:{catdog}',
               f'--layers={PROBE_LAYERS}', *extra]
    said = results.shell([sys.executable] + command, capture_output=True, text=True)
    result = json.loads(said.stdout.splitlines()[-1])
    out[name] = {'layers': result['layers'], 'train': result['train'], 'eval': result['eval'],
                 'command': ' '.join(['python'] + command).replace(workdir, shown).replace(
                     catdog, 'CATDOG')}
  return out


def _run_in(config: str, flags_: dict, workdir: str, args):
  """config with flags_ in workdir: reused when finished, resumed or started; with args.no_run,
  what is there (None if nothing)."""
  if not args.no_run:
    results.train(config, flags_, workdir)  # reused when finished
  return runs_lib.read(workdir) if runs_lib.is_run(workdir) else None


# The ensemble's runs: configs/cifar10.py's recipe before the grid of recipe() took dropout out.
ENSEMBLE_FLAGS = {'config.model.dropout_rate': 0.5}


def _alexnet_run(args, seed: int, no_run: bool = False):
  from configs import cifar10  # pylint: disable=g-import-not-at-top
  epochs = cifar10.get_config().num_epochs
  run_args = argparse.Namespace(**{**vars(args), 'no_run': args.no_run or no_run})
  result = run(ALEXNET_CONFIG, {**ENSEMBLE_FLAGS, 'config.seed': seed, 'config.num_epochs': epochs},
               os.path.join(args.root, 'alexnet'), run_args)
  return result if _finished(result, epochs) else None


def ensemble(args) -> dict:
  """Seeds 0-2 of configs/cifar10.py with ENSEMBLE_FLAGS and their ensemble, 1 and 10 crops."""
  sys.path.insert(0, REPO)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:  # side by side
    members = list(pool.map(lambda seed: _alexnet_run(args, seed), (0, 1, 2)))
  if any(m is None for m in members):
    return {}  # not all finished (yet)
  out = {'seeds': [0, 1, 2], 'workdirs': [os.path.relpath(m.path, args.root) for m in members],
         'flags': ' '.join(f'--{k}={v}' for k, v in ENSEMBLE_FLAGS.items()), 'crops': {}}
  for crops in (1, 10):
    said = results.shell([sys.executable, '-m', 'alexnet_jax.tools.evaluate',
                          *[f'--workdir={m.path}' for m in members],
                          f'--config.data.eval_crops={crops}'], capture_output=True, text=True)
    out['crops'][str(crops)] = json.loads(said.stdout.splitlines()[-1])
  return out


def speed(args) -> dict:
  """Per network: the benchmark's train and forward rows and the layer profile (JSON as the tools
  write it, the per-round figures left out)."""
  del args
  out = {}
  for network in ('cifar18pct', 'cifar_conv_local'):
    with tempfile.TemporaryDirectory() as tmp:
      for tool, extra in (('benchmark', ['--modes=train,forward']), ('layer_profile', [])):
        subprocess.run([sys.executable, '-m', f'alexnet_jax.tools.{tool}', f'--network={network}',
                        f'--json={tmp}/{tool}.json', *extra], check=True, cwd=REPO)
      bench = json.load(open(f'{tmp}/benchmark.json'))
      out[network] = {'benchmark': bench, 'layers': json.load(open(f'{tmp}/layer_profile.json'))}
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('parts', nargs='+',
                      choices=('figure1', 'difference', 'lrn', 'speed', 'recipe', 'alexnet',
                               'ensemble', 'ablations', 'transfer', 'page'))
  parser.add_argument('--data', default='data/cifar10', help='CIFAR-10 photos: DATA/train/<class>/.')
  parser.add_argument('--root', default='runs/cifar10', help='Workdirs of the runs (reused).')
  parser.add_argument('--docs', default='docs', help='Writes DOCS/cifar10.md and DOCS/cifar10/.')
  parser.add_argument('--lrn_epochs', type=int, default=4, help='The budget of each lrn run.')
  parser.add_argument('--probe_epochs', type=float, default=2.0,
                      help='figure1: epochs at each learning rate of the grid.')
  parser.add_argument('--activations', default='relu,tanh', help='figure1: these activations.')
  parser.add_argument('--difference', default='config.model.lrn=False',
                      help='difference: the one change to Figure 1\'s runs.')
  parser.add_argument('--difference_epochs', type=float, default=4.0,
                      help='difference: the epochs of each run.')
  parser.add_argument('--no_run', action='store_true',
                      help='Start nothing: record what the runs under ROOT hold so far.')
  args = parser.parse_args()
  # The runs start in the repository (results.launch): paths given from elsewhere must hold there.
  args.root, args.docs, args.data = map(os.path.abspath, (args.root, args.docs, args.data))
  os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.abspath(args.root),
                                                                  'jax_cache'))
  if set(args.parts) - {'page', 'speed'} and not os.path.isdir(os.path.join(args.data, 'train')):
    raise SystemExit(f'--data={args.data} holds no train/ folder: unpack CIFAR-10 there with '
                     f'tar xzf cifar10-train-jpeg.tar.gz -C {args.data}.')
  for part in args.parts:
    if part == 'page':
      import cifar10_page  # pylint: disable=g-import-not-at-top  # launch/cifar10_page.py
      cifar10_page.write(_load_facts(args.docs), args.docs)
      continue
    result = {'figure1': figure1, 'difference': difference, 'lrn': lrn, 'speed': speed,
              'recipe': recipe, 'alexnet': alexnet, 'ensemble': ensemble,
              'ablations': ablations, 'transfer': transfer}[part](args)
    facts = _load_facts(args.docs)  # re-read: another invocation may have written meanwhile
    if part == 'figure1':  # per activation: one invocation may run relu, another tanh
      facts.setdefault('figure1', {}).update(result)
    elif result or part not in facts:  # an unfinished part (--no_run) keeps what was recorded
      facts[part] = result
    _save_facts(args.docs, facts)
    print(f'wrote {_facts_path(args.docs)} ({part})', flush=True)


if __name__ == '__main__':
  main()
