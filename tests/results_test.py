"""launch/results.py and launch/cifar10.py: a failing tool's error line reaches the user; runs
resume and are reused."""
import contextlib
import io
import os
import subprocess
import sys
import time
import types

import pytest

from alexnet_jax import cli
from alexnet_jax import runs as runs_lib
from conftest import REPO
from conftest import TINY
from conftest import snapshot

sys.path.insert(0, os.path.join(REPO, 'launch'))
import results  # pylint: disable=g-import-not-at-top,wrong-import-position  # launch/results.py


def test_a_failing_tool_stops_the_script_with_its_error_line():
  failing = [sys.executable, '-c', "import sys; print('progress', file=sys.stderr); "
             "print('error: no such workdir x', file=sys.stderr); sys.exit(3)"]
  with pytest.raises(SystemExit) as stopped:
    results.shell(failing, capture_output=True, text=True)
  assert str(stopped.value).endswith('\nerror: no such workdir x')
  assert str(stopped.value).startswith('failed (3): ')
  assert results.shell([sys.executable, '-c', 'print(1)'], capture_output=True,
                       text=True).stdout == '1\n'


def _no_rerun(*args, **kwargs):
  raise AssertionError(f'launched again: {args}')


def test_an_interrupted_run_resumes_its_log_goes_on_and_a_finished_run_is_reused(
    tmp_path, monkeypatch, capsys):
  # 12 tiny steps, a log point each, on one device (compiles faster; no mesh logic is tested
  # here); polled every 0.05 s instead of 2 s.
  point = {f'config.{k}': v for k, v in {**TINY, 'total_steps': 12, 'log_every_steps': 1}.items()}
  monkeypatch.setenv('XLA_FLAGS', os.environ['XLA_FLAGS'].replace(
      '--xla_force_host_platform_device_count=8', '--xla_force_host_platform_device_count=1'))
  monkeypatch.setattr(results, 'time', types.SimpleNamespace(
      sleep=lambda _: time.sleep(0.05), time=time.time))
  workdir = str(tmp_path / 'runs' / 'point')
  # Stopped (SIGTERM: a checkpoint, exit 0) at its first log point, as a Figure 1 run at its line.
  results.launch('configs/default.py', point, workdir, stop_at_error=1.0)
  stopped = runs_lib.read(workdir)
  assert not stopped.finished and 1 <= stopped.last_step < 12
  with open(workdir + '.log') as f:
    first_log = f.read()
  assert f'Preempted at step {stopped.last_step}' in first_log
  with monkeypatch.context() as patch:
    patch.setattr(results, 'launch', _no_rerun)
    results.train('configs/default.py', point, workdir, stop_at_error=1.0)  # got there: kept
  # Not finished: the same command resumes it from its checkpoint, and its log goes on.
  results.train('configs/default.py', point, workdir)
  resumed = runs_lib.read(workdir)
  assert resumed.finished and [r['step'] for r in resumed.train] == list(range(1, 13))
  with open(workdir + '.log') as f:
    log = f.read()
  assert log.startswith(first_log) and f'checkpoints/{stopped.last_step}' in log[len(first_log):]
  # Finished: reused, nothing launched or written.
  before = snapshot(str(tmp_path))
  monkeypatch.setattr(results, 'launch', _no_rerun)
  capsys.readouterr()
  results.train('configs/default.py', point, workdir)
  assert capsys.readouterr().out == f'# reused {workdir}\n'
  assert snapshot(str(tmp_path)) == before


def _made_up(root, docs):
  """What figure1, ablations and pictures return, with commands naming root and docs as they do."""
  row = lambda changes, seeds: {'changes': changes, 'top1_by_seed': seeds, 'final_top1': (
      sum(seeds) / 2, 0.01, 2), 'final_train_loss': (1, 0, 2)}
  return {
      'figure1': {'best': {a: {'lr': 0.01, 'grid': {0.01: 100}, 'steps': [100, 120]}
                           for a in ('relu', 'tanh')}, 'caps': {'relu': 400, 'tanh': 800},
                  'report': f'-m alexnet_jax.tools.report {root}/figure1 '
                            f'--output_dir={docs}/figure1'},
      'ablations': {'rows': [row('', [0.6, 0.64]), row('model.lrn=False', [0.5, 0.55])],
                    'report': f'-m alexnet_jax.tools.report {root}/ablations'},
      'pictures': {name: {'command': f'python -m alexnet_jax.tools.{name} --workdir={root}/b '
                                     f'--output={docs}/{name}.png',
                          'said': f'wrote {docs}/{name}.png: {name}'}
                   for name in ('filters', 'neighbours')}}


def test_root_and_docs_given_from_another_directory_mean_the_same_folders_to_the_runs(
    tmp_path, monkeypatch):
  """The runs start in the repository; results.py started in launch/ with paths relative to it
  finds them, writes the page where it was asked, and the page names paths from the repository."""
  repo = tmp_path / 'repo'
  (repo / 'launch').mkdir(parents=True)
  monkeypatch.setattr(results, 'REPO', str(repo))
  got = {}
  for part in ('figure1', 'ablations', 'pictures'):
    monkeypatch.setattr(results, part, lambda root, docs, part=part: (
        got.setdefault(part, (root, docs)), _made_up(root, docs)[part])[1])
  monkeypatch.chdir(repo / 'launch')
  monkeypatch.setattr(sys, 'argv', ['results.py', '--root=../runs/r', '--docs=../docs'])
  results.main()
  runs, pictures = str(repo / 'runs' / 'r'), str(repo / 'docs' / 'results')
  assert got == {part: (runs, pictures) for part in ('figure1', 'ablations', 'pictures')}
  page = (repo / 'docs' / 'results.md').read_text()
  assert (repo / 'docs' / 'results' / 'facts.json').exists() and str(tmp_path) not in page
  assert 'tools.report runs/r/figure1 --output_dir=docs/results/figure1' in page
  assert '--output=docs/results/filters.png\n```\n`wrote docs/results/filters.png: filters`' in page
  assert 'python launch/results.py --root=../runs/r --docs=../docs' in page  # as it was typed
  # --page_only, from yet another directory: the same page from the facts saved beside it.
  (repo / 'docs' / 'results.md').unlink()
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, 'argv', ['results.py', '--page_only', '--docs=repo/docs'])
  results.main()
  assert (repo / 'docs' / 'results.md').read_text() == page


def test_the_pictures_facts_hold_the_line_each_tool_wrote(monkeypatch):
  """Each picture's 'wrote PATH: ...' line as cli.wrote prints it (on stderr, after progress)."""
  def tool(command, **kwargs):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
      print('features: 600/600 training images', file=sys.stderr)
      cli.wrote(command[-1].split('=', 1)[1], f'drawn by {command[2]}')
    return subprocess.CompletedProcess(command, 0, stdout='', stderr=stderr.getvalue())
  monkeypatch.setattr(results, 'shell', tool)
  facts = results.pictures('runs/r', 'docs/results')
  assert facts['filters']['said'] == ('wrote docs/results/filters.png: drawn by '
                                      'alexnet_jax.tools.filters')
  assert facts['neighbours']['said'] == ('wrote docs/results/neighbours.png: drawn by '
                                         'alexnet_jax.tools.neighbours')
  assert facts['filters']['command'] == ('python -m alexnet_jax.tools.filters '
                                         '--workdir=runs/r/ablations/seed0/baseline '
                                         '--output=docs/results/filters.png')
