"""docs/results.md from launch/results.py's measurements (facts), and the Figure 1 picture."""
from alexnet_jax import runs as runs_lib  # launch/results.py puts the repo on the path

# What the paper says about each ablation (../shared/FACTS.md; Krizhevsky et al. 2012).
PAPER = {
    'model.lrn=False': 'LRN lowers top-1/top-5 error by 1.4/1.2 points (3.3); CIFAR-10, 4-layer '
                       'CNN: 13% test error without, 11% with',
    'model.overlap_pool=False': 'overlapping pooling lowers top-1/top-5 error by 0.4/0.3 (3.4)',
    'model.groups=1': 'two GPUs against one with half the kernels: 1.7/1.2 lower error (3.2)',
    'model.dropout_rate=0.5': 'without dropout, substantial overfitting; with it, about twice the '
                              'iterations to converge (4.2)',
    'model.activation=tanh': 'tanh trains several times slower than ReLU (Figure 1)',
    'data.pca_lighting_std=0.0': 'PCA lighting lowers top-1 error by over 1 point (4.1)',
    'data.flip=False': 'without crops and flips, substantial overfitting (4.1; no figure for '
                       'flips alone)',
}


# The sign the paper leads one to expect for held-out top-1 after a short run: removing LRN,
# overlapping pooling, PCA lighting or flips lowers it; tanh and dropout (twice the iterations to
# converge) are slower. groups=1 here keeps all the kernels, unlike the paper's one-GPU net: no
# sign.
EXPECTED = {'model.lrn=False': -1, 'model.overlap_pool=False': -1, 'model.dropout_rate=0.5': -1,
            'model.activation=tanh': -1, 'data.pca_lighting_std=0.0': -1, 'data.flip=False': -1}


def plot_figure1(groups, train_error: float, path: str) -> None:
  """Training error against step for each activation at its best rate: mean, band over seeds."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axis = plt.subplots(figsize=(7, 4.5))
  colors = {'relu': 'tab:blue', 'tanh': 'tab:red'}
  for group in groups:
    by_step = {}
    for run in group.runs:
      for row in run.train:
        by_step.setdefault(row['step'], []).append(1 - row['top1'])
    steps = sorted(by_step)
    activation = group.config['model.activation']
    name = 'ReLU' if activation == 'relu' else 'tanh'
    label = (f'{name}, lr {group.config["optimizer.learning_rate"]} ({len(group.runs)} seeds: '
             'mean, band min-max)')
    axis.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], color=colors[activation],
              label=label)
    axis.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                      color=colors[activation], alpha=0.2, linewidth=0)
  axis.axhline(train_error, color='black', linestyle='--', linewidth=1,
               label=f'{train_error:.0%} training error')
  axis.set(title='Figure 1: ReLU against tanh (each at its best learning rate)', xlabel='step',
           ylabel='training error (top-1, mean of 10 steps)', ylim=(0, 1))
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  fig.text(0.01, 0.01, 'A run stops once it reaches the line; seeds that stopped no longer count.',
           fontsize=7)
  fig.tight_layout(rect=(0, 0.03, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _mean_std(values):
  mean, std, _ = runs_lib.mean_std(values)
  return mean, std


def _steps_text(steps, cap):
  reached = [s for s in steps if s is not None]
  mean, std = _mean_std([s if s is not None else cap for s in steps])
  seeds = ', '.join(str(s) if s is not None else f'>{cap}' for s in steps)
  bound = '≥ ' if len(reached) < len(steps) else ''
  return f'{bound}{mean:.0f} ± {std:.0f} (seeds: {seeds})', mean, bound


def _figure1_verdict(ratio: float, sign: str, best: dict, caps: dict) -> str:
  """One sentence: how the measured ratio compares with the paper's 6x, and with the seeds."""
  if ratio <= 1:
    size = 'tanh got there as soon as ReLU or sooner: the claim does not show here'
  elif ratio < 1.5:
    size = 'the direction of the claim, with an effect far smaller than the paper\'s 6x'
  elif ratio < 4:
    size = 'the direction of the claim, with an effect smaller than the paper\'s 6x'
  else:
    size = 'the claim, with an effect of about the paper\'s size'
  relu = [s if s is not None else caps['relu'] for s in best['relu']['steps']]
  tanh = [s if s is not None else caps['tanh'] for s in best['tanh']['steps']]
  seeds = ('every ReLU seed got there before every tanh seed' if max(relu) < min(tanh) else
           'the seeds of the two overlap')
  return (f'**Measured here: tanh took {sign}{ratio:.1f}x the steps of ReLU to reach 25% training '
          f'error** ({size}; {seeds}).')


def _figure1(facts: dict) -> list[str]:
  best, caps = facts['best'], facts['caps']
  relu, relu_mean, relu_bound = _steps_text(best['relu']['steps'], caps['relu'])
  tanh, tanh_mean, tanh_bound = _steps_text(best['tanh']['steps'], caps['tanh'])
  ratio = tanh_mean / relu_mean
  sign = '≥ ' if tanh_bound and not relu_bound else ('≈ ' if relu_bound or tanh_bound else '')
  lrs = sorted(best['relu']['grid'])
  cell = lambda a, lr: (str(best[a]['grid'][lr]) if best[a]['grid'][lr] is not None
                        else f'not reached in {caps[a]}')
  return [
      _figure1_verdict(ratio, sign, best, caps), '',
      '| | paper (section 3.1, Figure 1) | measured here |', '| --- | --- | --- |',
      '| network, data | four-layer CNN, CIFAR-10, no regularisation | AlexNet (torchvision '
      'layout, FC 256 wide, He init), 64-px generated 10-class ImageNet (2,700 training images), '
      'SGD momentum 0.9, batch 32, no weight decay, dropout, flips or PCA lighting (random crops '
      'stay) |',
      f'| ReLU: steps to 25% training error | six times fewer than tanh | {relu} at lr '
      f'{best["relu"]["lr"]} |',
      f'| tanh: steps to 25% training error | | {tanh} at lr {best["tanh"]["lr"]} |',
      f'| ratio tanh / ReLU (means) | about 6 | **{sign}{ratio:.1f}** |', '',
      'The learning-rate grid at seed 0 (steps to 25% training error; the best rate of each '
      'activation then ran 2 more seeds):', '',
      '| learning rate | ' + ' | '.join(str(lr) for lr in lrs) + ' |',
      '| --- |' + ' ---: |' * len(lrs),
      '| ReLU | ' + ' | '.join(cell('relu', lr) for lr in lrs) + ' |',
      '| tanh | ' + ' | '.join(cell('tanh', lr) for lr in lrs) + ' |']


def _sign(row, base) -> int:
  """-1 or +1 when both seeds of the row fall below or above both baseline seeds, else 0."""
  mine = [v for v in row['top1_by_seed'] if v is not None]
  theirs = [v for v in base['top1_by_seed'] if v is not None]
  if mine and theirs and max(mine) < min(theirs):
    return -1
  if mine and theirs and min(mine) > max(theirs):
    return 1
  return 0


def _verdict(row, base) -> str:
  mine = [v for v in row['top1_by_seed'] if v is not None]
  theirs = [v for v in base['top1_by_seed'] if v is not None]
  if not mine or not theirs:
    return 'no eval yet'
  if max(mine) < min(theirs):
    return 'yes: lower than every baseline seed'
  if min(mine) > max(theirs):
    return 'yes: higher than every baseline seed'
  return 'no: within the seed spread'


def _ablations(facts: dict) -> list[str]:
  rows = facts['rows']
  base = rows[0]
  pct = lambda stat: f'{stat[0] * 100:.1f} ± {stat[1] * 100:.1f}'
  lines = ['| change from the baseline | paper says | held-out top-1 % (seeds) | change in top-1 '
           '(points) | effect beyond the seed spread? | the paper\'s direction? | '
           'final train loss |',
           '| --- | --- | ---: | ---: | --- | --- | ---: |',
           f'| none (baseline) | | {pct(base["final_top1"])} | | | | '
           f'{base["final_train_loss"][0]:.3f} |']
  agree, against, none = [], [], []
  for row in rows[1:]:
    delta = (row['final_top1'][0] - base['final_top1'][0]) * 100
    sign, expected = _sign(row, base), EXPECTED.get(row['changes'])
    direction = '-' if not sign else ('no sign expected' if expected is None else
                                      ('yes' if sign == expected else '**no: the opposite**'))
    (none if not sign else agree if sign == expected else against).append(f'`{row["changes"]}`')
    lines.append(f'| `{row["changes"]}` | {PAPER.get(row["changes"], "")} | '
                 f'{pct(row["final_top1"])} | {delta:+.1f} | {_verdict(row, base)} | {direction} | '
                 f'{row["final_train_loss"][0]:.3f} |')
  listed = lambda names: ', '.join(names) or 'none'
  lines += ['', f'In short: beyond the seed spread and in the paper\'s direction: '
            f'{listed(agree)}; the opposite of the paper: {listed(against)}; '
            f'no effect beyond the seed spread at this scale: {listed(none)}.']
  return lines


def cifar10_sections(cifar10: dict) -> str:
  """launch/cifar10.py's sections (Figure 1, the normalization result, AlexNet, its ensemble,
  ablations and transfer) for this page,
  one heading level down; their pictures are docs/cifar10/'s, which this page's links reach too."""
  import cifar10_page  # pylint: disable=g-import-not-at-top  # launch/cifar10_page.py
  lines = []
  if cifar10.get('figure1'):
    lines += cifar10_page._figure1(cifar10)  # pylint: disable=protected-access
  if cifar10.get('lrn'):
    lines += cifar10_page._lrn(cifar10)  # pylint: disable=protected-access
  if cifar10.get('alexnet'):
    lines += cifar10_page._alexnet(cifar10)  # pylint: disable=protected-access
  if cifar10.get('ensemble'):
    lines += cifar10_page._ensemble(cifar10)  # pylint: disable=protected-access
  if cifar10.get('ablations', {}).get('runs'):
    lines += cifar10_page._ablations(cifar10)  # pylint: disable=protected-access
  if cifar10.get('transfer', {}).get('runs'):
    lines += cifar10_page._transfer(cifar10)  # pylint: disable=protected-access
  demoted = ['#' + line if line.startswith('##') else line for line in lines]
  return '\n'.join(['## Real photographs: CIFAR-10', '',
                     'Written from `docs/cifar10/facts.json` by `python launch/cifar10.py '
                     '--data=data/cifar10 figure1 lrn alexnet ensemble ablations transfer page` (or `python launch/results.py '
                     '--cifar10_data=data/cifar10`), on the 50,000 CIFAR-10 training photos: 45,000 '
                     'train, 5,000 held out. More, with the PyTorch step comparison: '
                     '[cifar10.md](cifar10.md).', ''] + demoted)


def write(facts: dict, path: str, cifar10: dict | None = None) -> None:
  """The page; every number comes from facts (launch/results.py's measurements) and, where given,
  cifar10 (launch/cifar10.py's), whose sections come first."""
  f1, ab, pics = facts['figure1'], facts['ablations'], facts['pictures']
  text = TEMPLATE.format(
      command=facts['command'], root=facts['root'], date=facts['date'],
      minutes=facts['minutes'], load_start=facts['load_start'], load_end=facts['load_end'],
      run_minutes=facts['run_minutes'], runs=facts['runs'],
      figure1_table='\n'.join(_figure1(f1)), figure1_report=f1['report'],
      ablation_table='\n'.join(_ablations(ab)), ablation_report=ab['report'],
      filters_command=pics['filters']['command'], filters_said=pics['filters']['said'],
      neighbours_command=pics['neighbours']['command'],
      neighbours_said=pics['neighbours']['said'])
  if cifar10:
    head, rest = text.split('\n## Figure 1', 1)
    text = head + '\n' + cifar10_sections(cifar10) + '\n## Figure 1 on generated images' + rest
  with open(path, 'w') as f:
    f.write(text)


TEMPLATE = """# Results: the paper's claims, measured at a scale that fits 2 CPU cores

This page is written by one command, which trains every run below, writes the reports and the
pictures, and fills in every number:

```
{command}
```

It reuses the finished runs under `{root}/` (delete it to start over). Time, on this machine's 2
CPU cores shared with other jobs: the {runs} runs trained for {run_minutes:.0f} min in all (each
run's wall time from the first to the last line of its log, summed; the few seconds of Python
start-up before each are not in it), and the last invocation took {minutes:.1f} min ({date}; it
ran, or reused, the runs and made the reports, pictures and page; load average {load_start:.1f}
at its start, {load_end:.1f} at its end). On 2 idle cores a fresh start takes less. The numbers are
Krizhevsky et al. (2012)'s claims checked on 64-pixel generated images and runs of minutes: they
test the direction of each claim, not its size on ImageNet.

The runs on generated images are a fast check. The paper's two CIFAR-10 experiments (Figure 1
and the response-normalization result), run with Krizhevsky's own CIFAR-10 networks on real
CIFAR-10 photos, and AlexNet itself on them, come first where they have run (with
--cifar10_data); all of it, with the PyTorch step comparison, is on [cifar10.md](cifar10.md).

## Figure 1: ReLU against tanh

Steps to reach 25% training error (top-1 over the last 10 training batches, logged every 10
steps) with ReLU and with tanh, each at its own best learning rate from a grid of three
(`configs/sweeps/figure1.py`), 3 seeds at the best rate. A run stops (SIGTERM: it saves and exits)
once it gets there; ReLU runs stop at 400 steps, tanh runs at 800 otherwise (a "≥" marks a mean
with a run that never got there, counted at its cap). Config: `configs/figure1.py`.

{figure1_table}

The same runs as a sweep and a report (`launch/results.py` runs the grid at seed 0 first and the
other seeds only at each activation's best rate, and stops each run at 25% training error):

```
python launch/sweep.py --config=configs/figure1.py --sweep=configs/sweeps/figure1.py \\
    --workdir_root={root}/figure1     # the whole grid x 3 seeds: 18 runs
python {figure1_report}
```

![Figure 1: training error against step, ReLU and tanh](results/figure1.png)

Report of every Figure 1 run: [results/figure1/report.md](results/figure1/report.md).
With CIFAR-10 prepared by TFDS (as the paper), add `--config.data.name=cifar10
--config.data.train_split=train --config.data.eval_split=test --config.model.num_classes=10`.
Caveats: seed 0 chose the learning rates, so its numbers are the best of three and flatter both
activations a little; the network is AlexNet's layout, not the paper's four-layer CNN; random
crops stay on; training error is read on the augmented training batches as the run sees them.

## Ablations

The paper's ablations (`configs/sweeps/ablations.py`) on `configs/small_ablations.py`: the paper's
network with FC6/FC7 256 wide (LRN, overlapping pooling, two groups, flips and PCA lighting),
trained on 600 generated 64-px images, 60 a class, for 240 steps of 32 (about 13 epochs) with
AdamW and He initialisation, evaluated on 300 held-out images; 2 seeds each. Dropout is the
exception: with dropout 0.5 this network stayed near chance in calibration runs (with 20 or 50
warm-up steps, or a learning rate of 3e-4 instead of 1e-3; numbers in the config's docstring), so
the baseline has none and the dropout row adds the paper's 0.5
(`configs/sweeps/small_ablations.py`).

```
for seed in 0 1; do python launch/sweep.py --config=configs/small_ablations.py \\
    --sweep=configs/sweeps/small_ablations.py --workdir_root={root}/ablations/seed$seed \\
    --config.seed=$seed; done
python {ablation_report}
```

Held-out top-1 at the end of training, mean ± sample std over the 2 seeds; "beyond the seed
spread" means both seeds of the change fall outside the baseline's two seeds, on the same side:

{ablation_table}

Where an effect shows, it is a difference after 240 steps, far from convergence: how fast each
network learns here, not the accuracy it would end at after the paper's 90 epochs, and so it can
be much larger than the paper's numbers. The training-loss curves below show one reason: without
LRN, the paper's input scale (0..255 pixels) under He initialisation starts the network at a far
larger loss. A dropout row near chance means that network did not start learning in 240 steps,
which is not the paper's mechanism (a network that learns, but converges more slowly). The tanh
row here is trained with AdamW; Figure 1 above, with SGD as in the paper, is the cleaner test.

With 300 held-out images one top-1 number has a binomial standard error of about 2.5 points, and
2 seeds give a poor estimate of the spread: a "no" here means that no effect of a few points
shows at this scale, not that the paper's effect is absent. The paper's differences (0.4-1.7
points on ImageNet after 90 epochs) are below what runs of this size can resolve. The report with
top-5, best-of-run values and speeds: [results/ablations/report.md](results/ablations/report.md).

![Learning curves of the ablations](results/ablations/curves.png)

## Pictures of a trained run (the ablation baseline, seed 0)

Figure 3 of the paper: conv1's kernels, each scaled to its own range, the two groups' kernels as
two blocks (in the paper, one GPU's kernels came out colour-agnostic and the other's
colour-specific, after 90 epochs of ImageNet; after 240 steps on generated shapes these still look
like their random initialisation, each tile stretched to its own range):

```
{filters_command}
```
`{filters_said}`

![conv1 filters](results/filters.png)

Figure 4 of the paper: held-out images, their top-5 predictions (the true class in orange) and
the six training images nearest in FC7 feature space (after the activation). The class names are
the first 10 ImageNet synsets that the generated set borrows (a "tench" is a shape and texture
here, not a fish):

```
{neighbours_command}
```
`{neighbours_said}`

![predictions and nearest neighbours](results/neighbours.png)
"""
