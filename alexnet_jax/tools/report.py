"""Compares runs: a table (OUT/report.md) and learning curves (OUT/curves.png), seeds pooled.

  python -m alexnet_jax.tools.report runs/ablations [more runs or sweep roots ...] [--output=OUT]
  python -m alexnet_jax.tools.report runs/figure1 --train_error=0.25 --json

DIR: a workdir, or a folder of workdirs (a sweep's workdir_root, any depth). One row per run;
runs whose configs differ only in `seed` share a row: mean +- sample std over seeds, and the
seed count. "changes" is what a row's config changes from the baseline (the sweep's empty
point, else the first run). Reads what is there: runs still going are reported as unfinished.
--json: one object per row on stdout instead of the table.

A sweep's workdir_root (launch/sweep.py's, with its sweep.json) also gets a table of its points,
each queued, running, finished, failed (with its log), stopped (resumes when the sweep is
submitted again) or not submitted: what SLURM's squeue says where the points went to SLURM, else
what the points' status files and workdirs say. --json prints them first, one object per point.
"""
import json
import math
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags

from alexnet_jax import cli
from alexnet_jax import paths
from alexnet_jax import runs as runs_lib
from alexnet_jax import sweeps

FLAGS = flags.FLAGS
PERCENT = ('final_top1', 'best_top1', 'final_top5', 'best_top5', 'final_train_top1')
COLUMNS = (('steps', 'steps'), ('final_train_loss', 'final train loss'),
           ('final_top1', 'final eval top-1 %'), ('best_top1', 'best eval top-1 %'),
           ('final_top5', 'final eval top-5 %'), ('best_top5', 'best eval top-5 %'),
           ('images_per_sec', 'images/s'))


def define_flags() -> None:
  flags.DEFINE_string('output_dir', None,
                      'Folder for report.md and curves.png; default: the first DIR.')
  flags.DEFINE_float('train_error', None, 'Also report the steps to reach this training top-1 '
                     'error (e.g. 0.25, as the paper\'s Figure 1), at the log resolution.')
  flags.DEFINE_bool('json', False, 'One JSON object per row on stdout instead of the table.')


def run_values(run, train_error=None) -> dict:
  """The numbers of one run (None where it has none yet)."""
  last = lambda rows, key: rows[-1].get(key) if rows else None
  best = lambda key: max((r[key] for r in run.eval if key in r), default=None)
  rates = [r['images_per_sec'] for r in run.train if 'images_per_sec' in r]
  rates = rates[1:] or rates  # the first window holds the compilation
  values = {'steps': run.last_step, 'final_train_loss': last(run.train, 'loss'),
            'final_train_top1': last(run.train, 'top1'),
            'final_top1': last(run.eval, 'top1'), 'best_top1': best('top1'),
            'final_top5': last(run.eval, 'top5'), 'best_top5': best('top5'),
            'images_per_sec': sorted(rates)[len(rates) // 2] if rates else None}
  if train_error is not None:
    values['steps_to_error'] = runs_lib.steps_to(run.train, 'top1', 1.0 - train_error)
  return values


def _status(run) -> str:
  if run.diverged:
    return 'diverged'
  if not run.train and not run.eval:
    return 'no metrics yet'
  if not run.finished:
    return f'unfinished ({run.last_step}/{run.total_steps or "?"})'
  return ''


def summarise(groups, train_error=None) -> list[dict]:
  """One dict per group: name, changes, seeds, each value's (mean, std, n), status notes."""
  reference = runs_lib.baseline(groups).config
  rows = []
  for group in groups:
    per_run = [run_values(run, train_error) for run in group.runs]
    seeds = [run.config.get(runs_lib.SEED, '?') for run in group.runs]
    notes = [f'seed {seed} {s}' for seed, run in zip(seeds, group.runs) if (s := _status(run))]
    row = {'name': group.name, 'changes': runs_lib.changes(group.config, reference),
           'seeds': len(group.runs), 'seed_values': seeds, 'status': '; '.join(notes) or 'done',
           'finished': all(run.finished and not run.diverged for run in group.runs)}
    for key in per_run[0]:
      row[key] = runs_lib.mean_std([v[key] for v in per_run])
    if train_error is not None:
      row['reached'] = sum(v['steps_to_error'] is not None for v in per_run)
    rows.append(row)
  return rows


def _cell(stat, key: str, seeds: int) -> str:
  mean, std, n = stat
  if n == 0:
    return '-'
  scale, digits = (100.0, 1) if key in PERCENT else (1.0, 0 if key.startswith('steps') or
                                                     key == 'images_per_sec' else 3)
  text = f'{mean * scale:.{digits}f}'
  if seeds > 1:
    text += f' ± {std * scale:.{digits}f}'
  return text + (f' (n={n})' if n < seeds else '')


def _reached_cell(row) -> str:
  """Steps to the training error over the seeds that reached it, and how many did."""
  if not row['reached']:
    return f'not reached in {row["steps"][0]:.0f}'
  text = _cell(row['steps_to_error'], 'steps_to_error', row['reached'])
  return text + ('' if row['reached'] == row['seeds'] else f' ({row["reached"]} of {row["seeds"]})')


def table(rows, train_error=None) -> str:
  """The markdown table of the rows."""
  columns = list(COLUMNS)
  if train_error is not None:
    columns.insert(1, ('steps_to_error', f'steps to {train_error:.0%} train error'))
  head = ['run', 'changes', 'seeds'] + [title for _, title in columns] + ['status']
  lines = ['| ' + ' | '.join(head) + ' |', '| --- | --- | ---: |' + ' ---: |' * len(columns) +
           ' --- |']
  for row in rows:
    cells = [row['name'], row['changes'] or '(baseline)', str(row['seeds'])]
    cells += [_reached_cell(row) if key == 'steps_to_error' else _cell(row[key], key, row['seeds'])
              for key, _ in columns]
    lines.append('| ' + ' | '.join(cells + [row['status']]) + ' |')
  return '\n'.join(lines)


def _label(group, reference) -> str:
  changes = runs_lib.changes(group.config, reference)
  return changes or ('baseline' if group.name == 'baseline' else f'baseline: {group.name}')


def _band(axis, runs, split: str, key: str, label: str, color) -> None:
  """Mean over seeds at each logged step, shaded between the lowest and highest seed."""
  by_step = {}
  for run in runs:
    for r in getattr(run, split):
      if key in r and math.isfinite(r[key]):
        by_step.setdefault(r['step'], []).append(r[key])
  if not by_step:
    return
  steps = sorted(by_step)
  values = [by_step[s] for s in steps]
  mean = [sum(v) / len(v) for v in values]
  marker = 'o' if len(steps) <= 5 else None
  axis.plot(steps, mean, color=color, label=label, marker=marker, linewidth=1.5)
  if len(runs) > 1:
    axis.fill_between(steps, [min(v) for v in values], [max(v) for v in values], color=color,
                      alpha=0.2, linewidth=0)


def plot_curves(groups, path: str, title: str = '') -> None:
  """Train loss and eval top-1 against step, one line per group (band: lowest to highest seed)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  reference = runs_lib.baseline(groups).config
  colors = plt.get_cmap('tab10' if len(groups) <= 10 else 'tab20').colors
  fig, (loss_ax, top1_ax) = plt.subplots(1, 2, figsize=(11, 4.6))
  for i, group in enumerate(groups):
    label = f'{_label(group, reference)} ({len(group.runs)} seed{"s" * (len(group.runs) > 1)})'
    _band(loss_ax, group.runs, 'train', 'loss', label, colors[i % len(colors)])
    _band(top1_ax, group.runs, 'eval', 'top1', label, colors[i % len(colors)])
  loss_ax.set(title='Training loss', xlabel='step', ylabel='cross-entropy (log scale)',
              yscale='log')
  top1_ax.set(title='Held-out top-1 accuracy', xlabel='step', ylabel='top-1')
  for axis, what in ((loss_ax, 'train'), (top1_ax, 'eval')):
    axis.grid(alpha=0.3)
    if not axis.lines:
      axis.text(0.5, 0.5, f'no {what} rows yet', ha='center', va='center',
                transform=axis.transAxes, color='gray')
  handles, labels = loss_ax.get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc='lower center', ncol=2 if len(groups) > 4 else 1, fontsize=8,
               frameon=False)
  if title:
    fig.suptitle(title)
  rows = -(-len(handles) // (2 if len(groups) > 4 else 1))
  fig.tight_layout(rect=(0, min(0.45, 0.05 + 0.045 * rows), 1, 1))
  with paths.open_file(path, 'wb') as f:  # a local or gs:// folder
    fig.savefig(f, dpi=100, format='png')
  plt.close(fig)


def sweep_states(folders) -> list:
  """The points of the sweeps among folders (sweeps.PointState), each sweep's in its order."""
  return [point for folder in folders if sweeps.is_sweep(folder)
          for point in sweeps.states(folder)]


def sweep_table(states) -> str:
  """The markdown table of a sweep's points and their states."""
  return '\n'.join(['| point | state | detail |', '| --- | --- | --- |'] +
                   [f'| {p.name} | {p.state} | {p.detail} |' for p in states])


def _find(folders) -> list:
  """The runs of the folders; a sweep none of whose points has started yet holds none."""
  found = []
  for folder in folders:
    try:
      found += runs_lib.find([folder])
    except runs_lib.RunsError:
      if not sweeps.is_sweep(folder):
        raise
  return found


def write_report(folders, output: str, train_error=None, command: str = '',
                 states=()) -> list[dict]:
  """Writes OUTPUT/report.md and OUTPUT/curves.png (states: the sweep's points, first); returns
  the rows."""
  found = _find(folders)
  head = ['# Report', '', f'`{command}`' if command else '', '']
  if states:
    head += ['Sweep points:', '', sweep_table(states), '']
  if not found:  # a sweep whose points are all still queued
    paths.makedirs(output)
    paths.write_bytes(os.path.join(output, 'report.md'), '\n'.join(head).encode())
    return []
  groups = runs_lib.group(found)
  first = runs_lib.baseline(groups)
  groups = [first] + [g for g in groups if g is not first]  # the baseline's row first
  rows = summarise(groups, train_error)
  paths.makedirs(output)
  plot_curves(groups, os.path.join(output, 'curves.png'))
  unfinished = [r['name'] for r in rows if not r['finished']]
  lines = head + [
      f'Runs from {", ".join(folders)}: {sum(len(g.runs) for g in groups)} runs in '
      f'{len(groups)} rows. Values are the mean ± sample std over seeds (n: seeds that have '
      'the value); eval numbers are on the held-out split of each run\'s config.', '',
      table(rows, train_error), '',
      f'Unfinished or failed: {", ".join(unfinished)} (read as far as they got).'
      if unfinished else 'All runs finished.', '', '![curves](curves.png)', '']
  paths.write_bytes(os.path.join(output, 'report.md'), '\n'.join(lines).encode())
  return rows


def main(argv):
  cli.quiet_logs()
  folders = argv[1:]
  if not folders:
    cli.fail('no runs given: python -m alexnet_jax.tools.report DIR... [--output_dir=OUT]')
  output = FLAGS.output_dir or folders[0]
  states = sweep_states(folders)
  with cli.output(output, '--output_dir'):
    rows = write_report(folders, output, FLAGS.train_error,
                        command='python -m alexnet_jax.tools.report ' + ' '.join(sys.argv[1:]),
                        states=states)
  if FLAGS.json:
    for row in [{'point': p.name, 'state': p.state, 'detail': p.detail, 'task': p.task}
                for p in states] + rows:
      print(json.dumps(row))
  else:
    print('\n\n'.join(([sweep_table(states)] if states else []) +
                      ([table(rows, FLAGS.train_error)] if rows else [])))
  cli.wrote(os.path.join(output, 'report.md'),
            f'and {os.path.join(output, "curves.png")}' if rows else '')


if __name__ == '__main__':
  define_flags()
  cli.run(main, uses_jax=False)
