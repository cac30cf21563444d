"""docs/results.md from launch/results.py's measurements (facts), and the Figure 1 picture."""
import math

# What the paper says about each ablation (../shared/FACTS.md; Krizhevsky et al. 2012).
PAPER = {
    'model.lrn=False': 'LRN lowers top-1/top-5 error by 1.4/1.2 points (3.3); CIFAR-10, 4-layer '
                       'CNN: 13% test error without, 11% with',
    'model.overlap_pool=False': 'overlapping pooling lowers top-1/top-5 error by 0.4/0.3 (3.4)',
    'model.groups=1': 'two GPUs against one with half the kernels: 1.7/1.2 lower error (3.2)',
    'model.dropout_rate=0.0': 'without dropout, substantial overfitting; with it, about twice the '
                              'iterations to converge (4.2)',
    'model.activation=tanh': 'tanh trains several times slower than ReLU (Figure 1)',
    'data.pca_lighting_std=0.0': 'PCA lighting lowers top-1 error by over 1 point (4.1)',
    'data.flip=False': 'without crops and flips, substantial overfitting (4.1; no figure for '
                       'flips alone)',
}


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
    label = (f'{"ReLU" if activation == "relu" else "tanh"}, lr {group.config["optimizer.learning_rate"]}'
             f' ({len(group.runs)} seeds: mean, band min-max)')
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
  finite = [v for v in values if v is not None and math.isfinite(v)]
  if not finite:
    return math.nan, math.nan
  mean = sum(finite) / len(finite)
  std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else 0
  return mean, std


def write(facts: dict, path: str) -> None:
  """The page; every number comes from facts."""
  with open(path, 'w') as f:
    f.write('# Results\n\n```\n' + facts['command'] + '\n```\n\n' + repr(facts)[:2000] + '\n')
