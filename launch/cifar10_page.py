"""Writes docs/cifar10.md and its Figure 1 picture from launch/cifar10.py's facts.json."""
import math
import os
import statistics

from alexnet_jax import preprocess  # RESIZE_RATIO, configs/cifar10.py's; TensorFlow stays unimported

PAPER_RATIO = 6  # section 3.1: "six times faster"
PAPER_LRN = (0.13, 0.11)  # section 3.3: test error without / with response normalization


def _mean_std(values):
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _counted(facts: dict) -> dict:
  """{seed: epochs to the line}; a seed not there counts at the epochs it ran (its cap, or where it
  stood when the runs were read), a lower bound."""
  ran = facts.get('epochs_run', {})
  return {seed: e if e is not None else ran.get(seed, facts['cap'])
          for seed, e in facts['epochs'].items()}


def _epochs_text(facts: dict):
  counted = _counted(facts)
  return ', '.join(f'{e:.2f}' if e is not None else f'>{counted[s]:.3g}'
                   for s, e in sorted(facts['epochs'].items()))


def ratio(figure1: dict):
  """(ratio of the mean epochs tanh / ReLU, lowest and highest ratio over seed pairs, is_bound).

  A tanh seed that never reached the line counts where it stopped, so the ratio is then a lower
  bound.
  """
  counted = {a: list(_counted(figure1[a]).values()) for a in ('relu', 'tanh')}
  pairs = [t / r for t in counted['tanh'] for r in counted['relu']]
  bound = any(e is None for e in figure1['tanh']['epochs'].values())
  return (statistics.mean(counted['tanh']) / statistics.mean(counted['relu']), min(pairs),
          max(pairs), bound)


def ratios_at_lines(figure1: dict, lines=(0.5, 0.45, 0.4, 0.35, 0.3, 0.25)):
  """[(line, mean epochs ReLU, mean epochs tanh)] for each line every seed curve reached."""
  out = []
  for line in lines:
    means = []
    for activation in ('relu', 'tanh'):
      reached = [next((epoch for epoch, e in curve if e <= line), None)
                 for curve in figure1[activation]['curves'].values()]
      means.append(None if None in reached or not reached else statistics.mean(reached))
    if None not in means:
      out.append((line, *means))
  return out


def plot_figure1(figure1: dict, train_error: float, path: str) -> None:
  """Training error against epochs, every seed of each activation at its best rate (the paper's form)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axis = plt.subplots(figsize=(7, 4.5))
  for activation, color, style in (('relu', 'tab:blue', '-'), ('tanh', 'tab:red', '--')):
    if activation not in figure1:
      continue
    facts = figure1[activation]
    for i, (seed, curve) in enumerate(sorted(facts['curves'].items())):
      epochs, errors = zip(*curve) if curve else ((), ())
      name = 'ReLU' if activation == 'relu' else 'tanh'
      axis.plot(epochs, errors, color=color, linestyle=style, linewidth=1.2, alpha=0.85,
                label=f'{name}, lr {facts["lr"]} ({len(facts["curves"])} seeds)' if i == 0 else None)
  axis.axhline(train_error, color='black', linestyle=':', linewidth=1,
               label=f'{train_error:.0%} training error')
  axis.set(title='Figure 1 on CIFAR-10: cuda-convnet\'s 18pct net, ReLU against tanh',
           xlabel='epochs', ylabel='training error (mean of the last 50 steps)', ylim=(0, 0.95))
  axis.set_xlim(left=0)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  fig.text(0.01, 0.01, 'A run stops at the dotted line, or where its budget (or the session '
           'running it) ended.', fontsize=7)
  fig.tight_layout(rect=(0, 0.03, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _figure1(facts: dict) -> list[str]:
  figure1 = facts['figure1']
  lines = ['## Figure 1: ReLU against tanh (section 3.1)', '',
           'cuda-convnet\'s 18pct network (`configs/cifar10_18pct.py`), no weight decay, on the 45,000 '
           'training photos, batch 128, SGD with momentum 0.9 at a constant learning rate. Each '
           f'activation tried each rate of the grid for {figure1["relu"]["probe_epochs"]:g} epochs '
           '(seed 0); the rate with the lowest training error then ran on to 25% training error, '
           'and seeds 1 and 2 beside it.', '',
           '| activation | training error after the probe, by learning rate | chosen rate | '
           'epochs to 25% training error by seed (>E: not there after E epochs) | mean ± std |',
           '|---|---|---|---|---|']
  for activation in [a for a in ('relu', 'tanh') if a in figure1]:
    f = figure1[activation]
    grid = ', '.join(f'{lr}: {e:.3f}' for lr, e in sorted(f['probe_error'].items(),
                                                          key=lambda kv: float(kv[0])))
    reached = [e for e in f['epochs'].values() if e is not None]
    mean_std = (f'{_mean_std(reached)[0]:.2f} ± {_mean_std(reached)[1]:.2f}'
                if len(reached) == len(f['epochs']) else f'{len(reached)} of {len(f["epochs"])} '
                'reached')
    name = 'ReLU' if activation == 'relu' else 'tanh'
    lines.append(f'| {name} | {grid} | {f["lr"]} | {_epochs_text(f)} | {mean_std} |')
  if set(figure1) != {'relu', 'tanh'}:
    return lines + ['', 'Only one activation has run so far.', '']
  value, low, high, bound = ratio(figure1)
  pairs = (f'over the 9 seed pairs it ranges from {low:.2f}x to {high:.2f}x' if not bound else
           'a lower bound: a tanh seed that had not reached the line counts at the epochs it ran, '
           f'and so do the 9 seed-pair ratios, from {low:.2f}x to {high:.2f}x')
  lines += ['', f'**tanh / ReLU: {"≥ " if bound else ""}{value:.2f}x** (ratio of the mean epochs; '
            f'{pairs}). The paper: about {PAPER_RATIO}x.', '', '![Figure 1 on CIFAR-10](cifar10/figure1.png)', '',
            'The same ratio at higher lines, which every seed of both activations reached (mean '
            'epochs over the seeds):', '', '| training error | ReLU | tanh | tanh / ReLU |',
            '|---|---|---|---|']
  for line, relu, tanh in ratios_at_lines(figure1):
    lines.append(f'| {line:.0%} | {relu:.2f} | {tanh:.2f} | {tanh / relu:.2f}x |')
  lines.append('')
  if facts.get('figure1_note'):
    lines += [facts['figure1_note'], '']
  return lines


def _epochs_to(curve, error):
  return next((epoch for epoch, e in curve if e <= error), None)


def difference_line(figure1: dict, difference: dict) -> float:
  """The training error every seed-0 curve gets down to within the difference runs' budget,
  on a 5% grid: the line at which the two ratios are compared."""
  budget = difference['epochs']
  curves = [figure1[a]['curves']['0'] for a in ('relu', 'tanh')] + list(
      difference['curves'].values())
  lowest = max(min((e for epoch, e in c if epoch <= budget), default=1.0) for c in curves)
  return -(-round(lowest * 100, 6) // 5) * 5 / 100


def _difference(facts: dict) -> list[str]:
  figure1, diff = facts['figure1'], facts['difference']
  line = difference_line(figure1, diff)
  rows = {'as above': {a: figure1[a]['curves']['0'] for a in ('relu', 'tanh')},
          f'`{diff["override"]}`': diff['curves']}
  lines = [f'### What makes the ratio: `{diff["override"]}`', '',
           f'Seed 0 of each activation at its chosen rate, again with `{diff["override"]}`, '
           f'{diff["epochs"]:g} epochs; epochs to {line:.0%} training error (a line every curve '
           'reaches in that budget), beside the same measure of the runs above.', '',
           f'| network | ReLU: epochs to {line:.0%} | tanh: epochs to {line:.0%} | tanh / ReLU |',
           '|---|---|---|---|']
  for name, curves in rows.items():
    relu, tanh = (_epochs_to(curves.get(a, []), line) for a in ('relu', 'tanh'))
    value = f'{tanh / relu:.2f}x' if relu and tanh else 'n/a'
    lines.append(f'| {name} | {relu if relu is None else f"{relu:.2f}"} | '
                 f'{tanh if tanh is None else f"{tanh:.2f}"} | {value} |')
  lines.append('')
  if facts.get('difference_note'):
    lines += [facts['difference_note'], '']
  return lines


def _lrn(facts: dict) -> list[str]:
  lrn = facts['lrn']
  by_flag = {flag: [r for r in lrn['runs'].values() if r['lrn'] == flag] for flag in (True, False)}
  lines = ['## Response normalization (section 3.3)', '',
           'cuda-convnet\'s conv-local network (`configs/cifar10_conv_local.py`) with its two '
           'cross-map normalizations (the 11% net) and without them (the 13% net), '
           f'{lrn["epochs"]} epochs each (learning rate 0.001, /10 for the last epoch), random '
           '24-px crops and flips, error on the 5,000 held-out photos (centre crop).', '',
           '| network | held-out error by seed | mean ± std | training error at the end (mean '
           'of the seeds, the last 50 steps, crops and flips) |',
           '|---|---|---|---|']
  for flag in (True, False):
    runs = sorted(by_flag[flag], key=lambda r: r['seed'])
    errors = [r['error'] for r in runs]
    mean, std = _mean_std(errors)
    lines.append(f'| {"with" if flag else "without"} normalization | '
                 f'{", ".join(f"{e:.2%}" for e in errors)} | {mean:.2%} ± {std:.2%} | '
                 f'{statistics.mean(r["train_error"] for r in runs):.2%} |')
  (mean_on, std_on), (mean_off, std_off) = (_mean_std([r['error'] for r in by_flag[f]])
                                            for f in (True, False))
  spread = (std_on**2 / len(by_flag[True]) + std_off**2 / len(by_flag[False]))**0.5
  lower = sum(a['error'] < b['error'] for a in by_flag[True] for b in by_flag[False])
  lines += ['', f'**Normalization lowers the held-out error by {(mean_off - mean_on) * 100:.2f} '
            f'± {spread * 100:.2f} points** (difference of the means ± its standard error; in '
            f'{lower} of the {len(by_flag[True]) * len(by_flag[False])} seed pairs the network '
            f'with normalization has the lower error). The paper: {PAPER_LRN[0]:.0%} against '
            f'{PAPER_LRN[1]:.0%} test error, 2 points, after about 500 epochs; this budget is far '
            'shorter.', '']
  if facts.get('lrn_note'):
    lines += [facts['lrn_note'], '']
  return lines


def _speed(facts: dict) -> list[str]:
  lines = ['## The small-network step beside PyTorch', '',
           'Each network\'s train step as the CLI builds it (its config: batch 128, SGD with momentum) '
           'against the same network in PyTorch (`alexnet_jax/tools/torch_nets.py`, tested to give '
           'the same logits from the same weights) with the same optimizer and batch, one process each, '
           'alternated rounds on the idle 2 cores (`python launch/cifar10.py speed`: '
           '`python -m alexnet_jax.tools.benchmark --network=NET` and '
           '`python -m alexnet_jax.tools.layer_profile --network=NET`).', '',
           '| network | train img/s, JAX | PyTorch | JAX / PyTorch (range of rounds) | forward img/s, '
           'JAX | PyTorch | JAX / PyTorch |', '|---|---|---|---|---|---|---|']
  for network, got in facts['speed'].items():
    rows = got['benchmark']['rows']
    cells = []
    for mode in ('train', 'forward'):
      row = rows[mode]
      cells += [f"{row['jax']['images_per_sec']:.0f}", f"{row['torch']['images_per_sec']:.0f}",
                f"{row['ratio']:.2f}" + (f" ({min(row['ratio_rounds']):.2f}-"
                                        f"{max(row['ratio_rounds']):.2f})" if mode == 'train' else '')]
    lines.append(f'| {network} | ' + ' | '.join(cells) + ' |')
  lines += ['', 'Per layer, forward and backward (ms at batch 128; a layer\'s ReLU with it):', '']
  for network, got in facts['speed'].items():
    layers = got['layers']
    lines += [f'| {network} | JAX | PyTorch | JAX / PyTorch |', '|---|---|---|---|']
    lines += [f'| {name} | {ms:.1f} | {layers["torch"][name]:.1f} | '
              f'{ms / layers["torch"][name]:.2f} |' for name, ms in layers['jax'].items()]
    total = sum(layers['jax'].values()), sum(layers['torch'].values())
    lines += [f'| sum | {total[0]:.1f} | {total[1]:.1f} | {total[0] / total[1]:.2f} |', '']
  if facts.get('speed_note'):
    lines += [facts['speed_note'], '']
  return lines


def _alexnet_choice(facts: dict) -> list[str]:
  c = facts['alexnet_choice']
  lines = ['### How the 32-px photos meet the paper\'s network', '',
           f'Two ways, {c["epochs"]} epochs each at seed 0 ({c["note"]}), held-out photos:', '',
           '| input | flags on `configs/cifar10.py` | held-out top-1 | top-5 | loss |',
           '|---|---|---|---|---|']
  for row in c['rows']:
    lines.append(f'| {row["name"]} | `{row["flags"]}` | {row["top1"]:.2%} | {row["top5"]:.2%} | '
                 f'{row["loss"]:.3f} |')
  speeds = ', '.join(f'{name}: {rate}' for name, rate in c['speed'].items())
  return lines + ['', f'Speed ({c["speed_note"]}): {speeds}. Initialisation: {c["paper_init"]}; '
                  'PyTorch\'s default initialisation learns from the start, and the config uses it.',
                  '']


PAPER_TABLE2 = ((40.7, 18.2), (38.1, 16.4))  # top-1 / top-5 error: 1 CNN, 5 CNNs averaged


def _ensemble(facts: dict) -> list[str]:
  e = facts['ensemble']
  first = next(iter(e['crops'].values()))['members']
  lines = ['## One network against several (the paper\'s Table 2)', '',
           f'Three runs of `configs/cifar10.py`'
           f'{" with `" + e["flags"] + "` (its recipe when they ran;" if e.get("flags") else " ("}'
           ' seeds 0, 1, 2) and their ensemble, the mean of their softmax outputs: `python -m alexnet_jax.tools.evaluate '
           '--workdir=runs/seed0 --workdir=runs/seed1 --workdir=runs/seed2 '
           '--config.data.eval_crops=10`. Held-out top-1 / top-5 error:', '',
           f'| crops | {" | ".join(f"seed {s}" for s in e.get("seeds", range(len(first))))} | one '
           f'network (mean ± std) | ensemble of {len(first)} | gain |',
           '|---' * (len(first) + 4) + '|']
  for crops, result in sorted(e['crops'].items(), key=lambda kv: int(kv[0])):
    members = result['members']
    top1 = [1 - m['top1'] for m in members]
    mean, std = _mean_std(top1)
    ens = result['ensemble']
    cells = ' | '.join(f'{1 - m["top1"]:.2%} / {1 - m["top5"]:.2%}' for m in members)
    lines.append(f'| {crops} | {cells} | {mean:.2%} ± {std:.2%} | {1 - ens["top1"]:.2%} / '
                 f'{1 - ens["top5"]:.2%} | {(mean - (1 - ens["top1"])) * 100:.2f} points |')
  (one1, one5), (five1, five5) = PAPER_TABLE2
  return lines + ['', f'The paper, ILSVRC-2012 validation: one CNN {one1}% / {one5}%, five CNNs '
                  f'{five1}% / {five5}%: {one1 - five1:.1f} points of top-1 from averaging.', '']


TRAIN_PHOTOS = 45_000  # of the 50,000: the rest held out
# alexnet_images()'s groups of the ensemble's runs, which only Table 2 needs
ENSEMBLE_RUNS, ENSEMBLE_OTHER_SEEDS = 'the ensemble\'s runs', 'the ensemble\'s other seeds'


def alexnet_images(facts: dict) -> dict:
  """Training images each group of AlexNet runs on the page went through: {group: images}."""
  out = {}
  if facts.get('alexnet'):
    out['the 12-epoch run'] = facts['alexnet']['epochs'] * TRAIN_PHOTOS
  if facts.get('alexnet_choice'):
    c = facts['alexnet_choice']
    out['the two inputs compared'] = len(c['rows']) * c['epochs'] * TRAIN_PHOTOS
  if facts.get('recipe', {}).get('runs'):
    out['the recipe grid'] = len(facts['recipe']['runs']) * facts['recipe']['epochs'] * TRAIN_PHOTOS
  if facts.get('ensemble') and facts.get('alexnet'):
    members = len(next(iter(facts['ensemble']['crops'].values()))['members'])
    if facts['ensemble'].get('flags'):  # runs of their own
      out[ENSEMBLE_RUNS] = members * facts['alexnet']['epochs'] * TRAIN_PHOTOS
    else:  # seed 0 is the 12-epoch run
      out[ENSEMBLE_OTHER_SEEDS] = (members - 1) * facts['alexnet']['epochs'] * TRAIN_PHOTOS
  if facts.get('ablations', {}).get('runs'):
    out['the ablations'] = len(facts['ablations']['runs']) * facts['ablations']['epochs'] * TRAIN_PHOTOS
  t = facts.get('transfer', {})
  if t.get('runs') and all('images' in r for r in t['runs'].values()):
    out['cats against dogs'] = t['pretrain']['images'] + sum(r['images'] for r in t['runs'].values())
  return out


def _idle_seconds(a: dict) -> float:
  """The run's train-step seconds on idle cores: as measured, or, for a run that shared the cores,
  'idle_seconds' (derived from an idle measurement, said in 'idle_note')."""
  return a.get('idle_seconds', a['train_seconds'])


def _alexnet_time(facts: dict) -> list[str]:
  """The AlexNet runs' time at the 12-epoch run's rate on the idle cores."""
  a, groups = facts['alexnet'], alexnet_images(facts)
  rate = a['epochs'] * TRAIN_PHOTOS / _idle_seconds(a)
  total = sum(groups.values())
  parts = ', '.join(f'{name} {images / 1e6:.2f}M' for name, images in groups.items())
  ensemble = groups.get(ENSEMBLE_RUNS, 0) + groups.get(ENSEMBLE_OTHER_SEEDS, 0)
  rest = (f'; without the ensemble\'s runs, which only Table 2 below needs, '
          f'{(total - ensemble) / rate / 3600:.1f} hours' if ensemble else '')
  return [f'Time: the AlexNet runs on this page went through {total / 1e6:.2f} million training '
          f'images ({parts}). At the 12-epoch run\'s rate on the 2 idle cores, '
          f'{rate:.0f} images/s, that is {total / rate / 3600:.1f} hours of train steps{rest} (the '
          'fine-tuning of the classifier alone runs faster than that; evaluation and start-up not '
          'counted). They ran over several sessions, often side by side on the shared cores.', '']


def _alexnet(facts: dict) -> list[str]:
  a = facts['alexnet']
  one, ten = a['eval']['1'], a['eval']['10']
  minutes = _idle_seconds(a) / 60
  lines = [
      '## AlexNet on CIFAR-10', '',
      f'The paper\'s AlexNet (`configs/cifar10.py`: its layers unchanged'
      f'{", without dropout" if a.get("dropout", 0.5) == 0 else ""}, the 32-px photos '
      f'upsampled to 64 px, PyTorch\'s default initialisation), {a["epochs"]:g} epochs on the '
      f'45,000 training photos, seed 0: `python -m alexnet_jax.main --config=configs/cifar10.py '
      f'--workdir=runs/cifar10_alexnet --config.data.name=folder:data/cifar10`.', '',
      '| evaluation | held-out top-1 | top-5 | loss | photos |', '|---|---|---|---|---|',
      f'| centre crop | {one["top1"]:.2%} | {one["top5"]:.2%} | {one["loss"]:.3f} | {one["count"]} |',
      f'| 10 crops (`--config.data.eval_crops=10`) | {ten["top1"]:.2%} | {ten["top5"]:.2%} | '
      f'{ten["loss"]:.3f} | {ten["count"]} |', '',
      f'Training took {minutes:.1f} minutes of train steps on the 2 idle CPU cores (evaluation and '
      f'start-up not counted{"; " + a["idle_note"] if a.get("idle_note") else ""}); the training accuracy of the last 50 steps, with augmentation'
      f'{" and dropout" if a.get("dropout", 0.5) else ""}: {a["final_train_top1"]:.2%}. 10 crops add {(ten["top1"] - one["top1"]) * 100:+.2f} '
      'points of top-1. The anchor: cuda-convnet\'s 18pct network reached 82% test accuracy in 20 '
      'minutes on a GTX 580.', '']
  if facts.get('alexnet_note'):
    lines += [facts['alexnet_note'], '']
  lines += _alexnet_time(facts)
  if facts.get('alexnet_choice'):
    lines += _alexnet_choice(facts)
  if facts.get('recipe', {}).get('runs'):
    lines += _recipe(facts)
  return lines + [
      '### What it learned (the paper\'s Figures 3 and 4)', '',
      f'![conv1 kernels](cifar10/{os.path.basename(a["pictures"]["filters"]["path"])})', '',
      f'`{a["pictures"]["filters"]["command"]}`', '', *_in_band(a['pictures']),
      f'![FC7 nearest neighbours](cifar10/{os.path.basename(a["pictures"]["neighbours"]["path"])})',
      '', f'`{a["pictures"]["neighbours"]["command"]}`', '']


def _in_band(pictures: dict) -> list[str]:
  """conv1's kernels within the band of the photos as the pipeline scales them, where drawn."""
  if 'filters_in_band' not in pictures:
    return []
  p = pictures['filters_in_band']
  return [f'The same kernels, the part of each within the band of the 32-px photos as the pipeline '
          f'scales them (the rest meets nothing in any photo): {p["said"]}.', '',
          f'![conv1 kernels, in-band part](cifar10/{os.path.basename(p["path"])})', '',
          f'`{p["command"]}`', '']


def _window(ratio: float) -> str:
  """data.resize_ratio as the window of the 32-px photos it trains on."""
  side = round(32 / ratio)
  name = "256/224, the config's" if math.isclose(ratio, preprocess.RESIZE_RATIO) else f'{ratio:g}'
  return f'{side} px{", the whole photo" if side == 32 else ""} ({name})'


def _recipe(facts: dict) -> list[str]:
  r = facts['recipe']
  ratio = lambda run: run.get('resize_ratio', preprocess.RESIZE_RATIO)  # older facts: the config's
  grid = [run for run in r['runs'].values() if math.isclose(ratio(run), preprocess.RESIZE_RATIO)]
  windows = [run for run in r['runs'].values() if run not in grid]
  lines = ['### The learning rate, dropout and training window, measured', '',
           f'`configs/cifar10.py` at seed 0 for {r["epochs"]:g} epochs (the cosine decay over those), '
           'a 2x2 grid, then the window of the 32-px photos it trains on (`data.resize_ratio`; '
           'the held-out photos are evaluated in the same proportion, the centre window): '
           '`python launch/cifar10.py --data=data/cifar10 recipe`.', '',
           '| learning rate | dropout | window (`data.resize_ratio`) | held-out top-1 | '
           'training top-1 (last 50 steps) |', '|---:|---:|---:|---:|---:|']
  for run in (sorted(grid, key=lambda x: (-x['dropout'], x['lr'])) +
              sorted(windows, key=lambda x: -x['resize_ratio'])):
    lines.append(f'| {run["lr"]} | {run["dropout"]} | {_window(ratio(run))} | {run["top1"]:.2%} | '
                 f'{run["train_top1"]:.2%} |')
  if facts.get('recipe_note'):
    lines += ['', facts['recipe_note']]
  return lines + ['']


# The paper's ImageNet figures beside each point of configs/sweeps/ablations.py (Krizhevsky et al.
# 2012; the section in brackets).
PAPER_ABLATIONS = {
    'model.lrn=False': 'no LRN: +1.4 / +1.2 points of top-1 / top-5 error (3.3)',
    'model.overlap_pool=False': 'pooling 2/2, not 3/2: +0.4 / +0.3 (3.4)',
    'model.groups=1': 'one GPU with half the kernels: +1.7 / +1.2 (3.2; here all the kernels)',
    'model.dropout_rate=0.0': 'no dropout: substantial overfitting; dropout doubles the '
                              'iterations to converge (4.2)',
    'model.dropout_rate=0.5': 'the paper\'s dropout, which the CIFAR-10 recipe leaves out: '
                              'without it, substantial overfitting; it doubles the iterations to '
                              'converge (4.2)',
    'model.activation=tanh': 'tanh: several times slower to train (Figure 1)',
    'data.pca_lighting_std=0.0': 'no PCA lighting: over 1 point more top-1 error (4.1)',
    'data.flip=False': 'no crops and flips: substantial overfitting (4.1; no figure for flips)',
}


def _ablations(facts: dict) -> list[str]:
  a = facts['ablations']
  by_change = {}
  for run in a['runs'].values():
    by_change.setdefault(run['change'], []).append(run)
  if 'baseline' not in by_change:
    return []
  errors = lambda runs: [1 - r['top1'] for r in runs]
  base = errors(by_change['baseline'])
  base_mean, base_std = _mean_std(base)
  lines = ['## The paper\'s ablations on real photos', '',
           f'`configs/sweeps/ablations.py`\'s points on `configs/cifar10.py`, seeds '
           f'{", ".join(map(str, a["seeds"]))}, each run {a["epochs"]:g} epochs (the cosine decay '
           'over them): `python launch/cifar10.py --data=data/cifar10 ablations`. Held-out top-1 '
           'error (centre crop), mean ± std over the seeds:', '',
           '| change | the paper (ImageNet) | held-out top-1 error | change (points) | beyond the '
           'seed spread? | training top-1 |', '|---|---|---:|---:|---|---:|',
           f'| none (baseline) | | {base_mean:.2%} ± {base_std:.2%} | | | '
           f'{statistics.mean(r["train_top1"] for r in by_change["baseline"]):.2%} |']
  for change, runs in by_change.items():
    if change == 'baseline':
      continue
    mine = errors(runs)
    mean, std = _mean_std(mine)
    beyond = ('yes: above every baseline seed' if min(mine) > max(base) else
              'yes: below every baseline seed' if max(mine) < min(base) else 'no')
    lines.append(f'| `{change}` | {PAPER_ABLATIONS.get(change, "")} | {mean:.2%} ± {std:.2%} | '
                 f'{(mean - base_mean) * 100:+.2f} | {beyond} | '
                 f'{statistics.mean(r["train_top1"] for r in runs):.2%} |')
  lines += ['', f'What {a["epochs"]:g} epochs can show: the paper\'s figures are after about 90 '
            'epochs, where each change\'s cost in held-out error has settled. A short budget '
            'measures how fast each network learns as much as where it ends: dropout and the '
            'augmentations, which regularize, cost accuracy early and pay later; changes that slow '
            'learning (tanh) show larger here than at the end.']
  if facts.get('ablations_note'):
    lines += ['', facts['ablations_note']]
  return lines + ['']


def _transfer_name(kind: str) -> str:
  if kind == 'scratch':
    return 'from scratch'
  trained = 'every layer' if '_all' in kind else 'the classifier (FC6-FC8)'
  lr = kind.rpartition('_lr')[2] if '_lr' in kind else '0.001, the config\'s'
  return f'fine-tuned from the 8-class run: {trained}, lr {lr}'


def _transfer(facts: dict) -> list[str]:
  t = facts['transfer']
  runs = t.get('runs', {})
  kinds = {}
  for run in runs.values():
    kinds.setdefault(run['kind'], []).append(run)
  if 'scratch' not in kinds or 'pretrain' not in t or len(kinds) < 2:
    return []
  lines = ['## Cats against dogs, as the README\'s "Classify your own photos"', '',
           f'AlexNet (`configs/cifar10.py`) trained {t["pretrain_epochs"]:g} epochs on the 8 '
           f'CIFAR-10 classes that are neither cat nor dog (held-out top-1 '
           f'{t["pretrain"]["top1"]:.2%} on those 8), then fine-tuned with `configs/finetune.py` '
           f'on {t["per_class"]} cats and {t["per_class"]} dogs; against the same 1,000 photos '
           f'trained from scratch with `configs/cifar10.py` ({t["scratch_epochs"]:g} epochs of them). '
           'All on the same held-out cats and dogs (the 5,000 held-out photos\' cats and dogs, '
           'never seen by any of these runs): `python launch/cifar10.py --data=data/cifar10 '
           'transfer`.', '', '| start | seeds: held-out top-1 | mean ± std | photos | steps |',
           '|---|---|---:|---:|---:|']
  for kind, members in sorted(kinds.items(), key=lambda kv: kv[0] == 'scratch'):
    members = sorted(members, key=lambda r: r['seed'])
    mean, std = _mean_std([r['top1'] for r in members])
    seeds = ', '.join(f'{r["seed"]}: {r["top1"]:.2%}' for r in members)
    lines.append(f'| {_transfer_name(kind)} | {seeds} | {mean:.2%} ± {std:.2%} | '
                 f'{members[0]["count"]} | {members[0]["steps"]} |')
  lines += ['', 'The commands: CATDOG holds train/cat/, train/dog/, val/cat/ and val/dog/ (the '
            'transfer part links them from data/cifar10), PRETRAINED is the 8-class run\'s workdir:',
            '']
  if t['pretrain'].get('command'):
    lines += [f'- the 8-class run (EIGHT/train/ holds the 8 classes\' photos, 90% trained on): '
              f'`{t["pretrain"]["command"]}`']
  for kind, members in sorted(kinds.items(), key=lambda kv: kv[0] == 'scratch'):
    command = members[0]['command']
    if kind != 'scratch':
      command += ' --config.init_from=PRETRAINED'
    lines += [f'- {_transfer_name(kind)}: `{command}`']
  if t.get('probes'):
    lines += _probes(t['probes'])
  if facts.get('transfer_note'):
    lines += ['', facts['transfer_note']]
  return lines + ['']


PROBED = {'pretrained': 'the 8-class run', 'random_init': 'the same network, freshly initialised',
          'scratch_seed0': 'from scratch on the 1,000 cats and dogs (seed 0; fit on its own '
                           'training photos)'}


def _probes(probes: dict) -> list[str]:
  """The linear probes' table: held-out top-1 per layer, a row per network probed."""
  layers = list(next(iter(probes.values()))['layers'])
  first = next(iter(probes.values()))
  lines = ['', f'Linear probes (`alexnet_jax.tools.probe`): a ridge classifier on each layer\'s '
           f'features of the {first["train"]} training cats and dogs (strength by 5-fold '
           f'cross-validation on them), held-out top-1 on the {first["eval"]}:', '',
           f'| features of | {" | ".join(layers)} |', '|---' * (len(layers) + 1) + '|']
  for name, probe in probes.items():
    cells = ' | '.join(f'{probe["layers"][layer]["top1"]:.2%}' for layer in layers)
    lines.append(f'| {PROBED.get(name, name)} | {cells} |')
  lines += ['', 'Their commands (SCRATCH: the from-scratch run\'s workdir):', '']
  lines += [f'- {PROBED.get(name, name)}: `{probe["command"]}`' for name, probe in probes.items()]
  return lines


def write(facts: dict, docs: str) -> str:
  """Writes DOCS/cifar10.md (and DOCS/cifar10/figure1.png) from what facts holds; returns the path."""
  lines = ['# The paper\'s CIFAR-10 experiments, on real CIFAR-10', '',
           'Generated by `python launch/cifar10.py --data=data/cifar10 figure1 difference lrn page` from '
           '`docs/cifar10/facts.json`, with Krizhevsky\'s own CIFAR-10 networks (cuda-convnet\'s '
           'layer files, `alexnet_jax/cifar_nets.py`) on the 50,000 CIFAR-10 training photos '
           '(JPEG re-encodings), 45,000 for training and 5,000 held out (a fixed shuffle). '
           'Every run: 2 CPU cores.', '']
  if facts.get('time_note'):
    lines += [facts['time_note'], '']
  if 'figure1' in facts:
    os.makedirs(os.path.join(docs, 'cifar10'), exist_ok=True)
    plot_figure1(facts['figure1'], 0.25, os.path.join(docs, 'cifar10', 'figure1.png'))
    lines += _figure1(facts)
    if 'difference' in facts and set(facts['figure1']) == {'relu', 'tanh'}:
      lines += _difference(facts)
  if 'lrn' in facts:
    lines += _lrn(facts)
  if 'speed' in facts:
    lines += _speed(facts)
  if facts.get('alexnet'):
    lines += _alexnet(facts)
  if facts.get('ensemble'):
    lines += _ensemble(facts)
  if facts.get('ablations', {}).get('runs'):
    lines += _ablations(facts)
  if facts.get('transfer', {}).get('runs'):
    lines += _transfer(facts)
  path = os.path.join(docs, 'cifar10.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return path
