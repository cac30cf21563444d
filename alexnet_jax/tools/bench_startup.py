"""Start-up of the project's commands, timed as whole processes in one run, rounds alternated.

  python -m alexnet_jax.tools.bench_startup [--rounds=3] [--json=PATH]

Rows:
  help TOOL          `python -m TOOL --help`, for main and every tool
  predict            tools.predict of one 64-px photo with a small trained run
  evaluate           tools.evaluate of that run (64 held-out photos)
  train folder cold  a 1-step training run on a folder of photos, with an empty compilation cache
  train folder warm  the same with the cache the setup filled
  train synth cold   the same two on synthetic data (no images read)
  train synth warm
Each process runs with `python -X importtime`; beside its wall time (the parent's clock around
the process, median over rounds) the table gives the cumulative import time of tensorflow and jax
and the summed own time of the project's modules, from that process's importtime lines (also
medians). The setup (a 2-class folder of 64 JPEGs, the small run, the warm caches) is not timed.
A row's order within a round is reversed every other round (the machine may be shared).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from alexnet_jax.tools import workers

from alexnet_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:  # at start-up only: other tools define flags of the same names
  flags.DEFINE_integer('rounds', 3, 'Alternating rounds; the table gives medians.')
  flags.DEFINE_string('json', '', 'Also write the results to this JSON file.')


TOOLS = ('alexnet_jax.main', 'alexnet_jax.tools.predict', 'alexnet_jax.tools.evaluate',
         'alexnet_jax.tools.export', 'alexnet_jax.tools.filters', 'alexnet_jax.tools.neighbours',
         'alexnet_jax.tools.report', 'alexnet_jax.tools.prepare', 'alexnet_jax.tools.comm_report',
         'alexnet_jax.tools.import_torchvision', 'alexnet_jax.tools.fake_imagenet',
         'alexnet_jax.tools.benchmark', 'alexnet_jax.tools.layer_profile',
         'alexnet_jax.tools.bench_input', 'alexnet_jax.tools.bench_feed',
         'alexnet_jax.tools.bench_predict', 'alexnet_jax.tools.bench_startup')
# A small run: 64 px, 64-wide FC layers, batch 8, one step.
TINY = ('--config.data.image_size=64', '--config.data.batch_size=8', '--config.model.fc_width=64',
        '--config.total_steps=1', '--config.log_every_steps=1', '--config.eval_every_steps=0',
        '--config.checkpoint.every_steps=1')
TARGETS = {'help': 1.5, 'predict': 2.5, 'warm / cold (synthetic)': 0.5}


PACKAGES = {'tensorflow': ('tensorflow', 'tensorflow_datasets', 'keras', 'tf_keras'),
            'jax': ('jax', 'jaxlib')}


def import_times(stderr: str) -> dict:
  """Seconds from `-X importtime` lines: the cumulative time of the outermost imports of
  TensorFlow's and JAX's packages (0 if not imported; a first use of the lazy TensorFlow import
  shows as several outermost lines), and the summed own time of the project's modules."""
  entries = []  # (depth, name, own, cumulative), in the order printed: children first
  for line in stderr.splitlines():
    if not line.startswith('import time:') or 'cumulative' in line:
      continue
    own, cumulative, name = line[len('import time:'):].split('|')
    entries.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip(), int(own) / 1e6,
                    int(cumulative) / 1e6))
  out = {'tensorflow': 0.0, 'jax': 0.0, 'project': 0.0}
  ancestors = []  # reversed, the lines come parents first
  for depth, name, own, cumulative in reversed(entries):
    del ancestors[depth:]
    top = name.split('.')[0]
    for key, packages in PACKAGES.items():
      if top in packages and not any(a.split('.')[0] in packages for a in ancestors):
        out[key] += cumulative
    if top in ('alexnet_jax', 'configs'):
      out['project'] += own
    ancestors.append(name)
  return out


def _photo(path: str, label: int, rng) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pixels = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
  pixels[16:48, 16:48, label] += 180  # a red or green square: learnable, not that it matters
  Image.fromarray(pixels).save(path, quality=90)


def setup(root: str) -> dict:
  """The folder of photos, the small run and the warm caches; returns the rows' commands."""
  rng = np.random.default_rng(0)
  for label, name in enumerate(('red', 'green')):
    os.makedirs(os.path.join(root, 'photos', 'train', name))
    for i in range(32):
      _photo(os.path.join(root, 'photos', 'train', name, f'{i:02d}.jpg'), label, rng)
  folder = (f'--config.data.name=folder:{root}/photos', '--config.data.train_split=train[:50%]',
            '--config.data.eval_split=train[50%:]', '--config.model.num_classes=2')
  synthetic = ('--config.data.name=synthetic', '--config.model.num_classes=2')
  run = os.path.join(root, 'run')
  train = lambda data, workdir: (
      'alexnet_jax.main', '--config=configs/default.py', f'--workdir={workdir}', *TINY, *data)
  rows = {f'help {tool.split(".")[-1]}': ((tool, '--help'), 'warm') for tool in TOOLS}
  rows.update({
      'predict': (('alexnet_jax.tools.predict', f'--workdir={run}',
                   os.path.join(root, 'photos', 'train', 'red', '00.jpg')), 'warm'),
      'evaluate': (('alexnet_jax.tools.evaluate', f'--workdir={run}'), 'warm'),
      'train folder cold': (train(folder, '{workdir}'), 'cold'),
      'train folder warm': (train(folder, '{workdir}'), 'warm'),
      'train synth cold': (train(synthetic, '{workdir}'), 'cold'),
      'train synth warm': (train(synthetic, '{workdir}'), 'warm'),
  })
  warm_cache = os.path.join(root, 'cache_warm')
  # The run predict and evaluate read; then one run of each kind, so the warm cache holds every
  # program the timed runs compile (predict's and evaluate's too).
  for command, _ in (rows['train folder warm'], rows['train synth warm'], rows['predict'],
                     rows['evaluate']):
    _launch(command, warm_cache, os.path.join(root, 'setup_run'), cwd=workers.ROOT,
            first_run=run)
  return rows


def _launch(command, cache: str, workdir: str, cwd: str, first_run: str = '') -> tuple:
  """Runs `python -X importtime -m COMMAND`; (wall seconds, stderr). {workdir} is filled with a
  fresh folder (first_run: the small run's own folder, if it does not exist yet)."""
  if first_run and not os.path.exists(first_run):
    workdir = first_run
  elif os.path.exists(workdir):
    shutil.rmtree(workdir)
  args = [a.replace('{workdir}', workdir) for a in command]
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache)
  start = time.perf_counter()
  done = subprocess.run([sys.executable, '-X', 'importtime', '-m', *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=900)
  seconds = time.perf_counter() - start
  if done.returncode not in (0, 1) or (done.returncode == 1 and '--help' not in args):
    raise RuntimeError(f'{" ".join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}')
  return seconds, done.stderr


def measure(root: str, rows: dict, rounds: int) -> dict:
  """{row: {'seconds': [...], 'tensorflow': [...], 'jax': [...], 'project': [...]}}."""
  got = {name: {'seconds': [], 'tensorflow': [], 'jax': [], 'project': []} for name in rows}
  names = list(rows)
  for r in range(rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      command, cache = rows[name]
      cache_dir = (os.path.join(root, 'cache_warm') if cache == 'warm' else
                   tempfile.mkdtemp(dir=root, prefix='cache_cold_'))
      seconds, stderr = _launch(command, cache_dir, os.path.join(root, 'timed_run'), workers.ROOT)
      got[name]['seconds'].append(seconds)
      for key, value in import_times(stderr).items():
        got[name][key].append(value)
      if cache == 'cold':
        shutil.rmtree(cache_dir, ignore_errors=True)
  return got


def summarise(got: dict) -> dict:
  rows = {name: {key: statistics.median(values) for key, values in figures.items()}
          | {'min': min(figures['seconds']), 'max': max(figures['seconds'])}
          for name, figures in got.items()}
  helps = [row['seconds'] for name, row in rows.items() if name.startswith('help ')]
  checks = {'help': max(helps), 'predict': rows['predict']['seconds'],
            'warm / cold (synthetic)': (rows['train synth warm']['seconds'] /
                                        rows['train synth cold']['seconds'])}
  return {'rows': rows, 'checks': {k: {'value': v, 'target': TARGETS[k], 'met': v <= TARGETS[k]}
                                   for k, v in checks.items()}}


def table(result: dict) -> str:
  lines = [f"Start-up, whole processes, medians of {result['rounds_run']} alternated rounds; "
           f"{result['cpu']}, {result['cores']} cores; load average before "
           f"{result['load_average'][0]:.2f}",
           f"{'command':26}{'wall s':>8}{'range':>14}{'tensorflow':>12}{'jax':>8}{'project':>9}"]
  for name, row in result['rows'].items():
    lines.append(f"{name:26}{row['seconds']:8.2f}{row['min']:7.2f}-{row['max']:<6.2f}"
                 f"{row['tensorflow']:12.2f}{row['jax']:8.2f}{row['project']:9.2f}")
  lines.append('import columns: seconds of the process\'s own `-X importtime` (tensorflow, jax: '
               'cumulative; project: own time of its modules)')
  for name, check in result['checks'].items():
    lines.append(f"target {name}: {check['value']:.2f} (<= {check['target']}: "
                 f"{'met' if check['met'] else 'NOT met'})")
  return '\n'.join(lines)


def main(argv):
  del argv
  with tempfile.TemporaryDirectory(prefix='alexnet_jax_bench_startup_') as root:
    load = os.getloadavg()
    rows = setup(root)
    result = summarise(measure(root, rows, FLAGS.rounds))
  result.update(rounds_run=FLAGS.rounds, cpu=workers.cpu_name(), cores=os.cpu_count(),
                load_average=load, load_average_after=os.getloadavg())
  print(table(result))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  define_flags()
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
