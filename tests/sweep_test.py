"""Sweeps: every key of every configs/sweeps file is a config key of its type; launch/sweep.py
run here (one after another, K at a time on split devices, again after a stop) with
tests/fake_main.py as the training, the point states tools.report names while it runs; and a real
SLURM job array of tiny runs against the same points run one after another."""
import concurrent.futures
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from alexnet_jax import sweeps
from configs import default
from conftest import REPO
from conftest import cli_environ
from conftest import error_line
from conftest import metrics_records
from conftest import run_module
from conftest import tiny_flags

SWEEPS = sorted(glob.glob(os.path.join(REPO, 'configs', 'sweeps', '*.py')))
_spec = importlib.util.spec_from_file_location('sweep_runner',
                                               os.path.join(REPO, 'launch', 'sweep.py'))
sweep_runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_runner)


def test_the_ablation_sweep_is_a_baseline_and_one_paper_change_per_point():
  path = os.path.join(REPO, 'configs', 'sweeps', 'ablations.py')
  sweep = sweep_runner.load_sweep(path)
  assert sweep[0] == {} and all(len(point) == 1 for point in sweep[1:])
  changed = {key: value for point in sweep[1:] for key, value in point.items()}
  config = default.get_config()
  for key, value in changed.items():  # each point moves its knob away from the baseline
    assert config[key.removeprefix('config.')] != value, key
  assert set(changed) >= {'config.model.lrn', 'config.model.overlap_pool', 'config.model.groups',
                          'config.model.dropout_rate', 'config.model.activation',
                          'config.data.pca_lighting_std'}


@pytest.mark.parametrize('path', SWEEPS, ids=os.path.basename)
def test_every_sweep_key_exists_in_the_default_config(path):
  config = default.get_config()
  config.lock()
  sweep = sweep_runner.load_sweep(path)
  assert sweep and all(isinstance(point, dict) for point in sweep)
  for point in sweep:
    sweep_runner.check_point(config, point)  # raises on an unknown key or a wrong type
  names = [sweep_runner.point_name(point) for point in sweep]
  assert len(set(names)) == len(names), 'two points would share a workdir'


@pytest.mark.parametrize('point', [{'config.model.lrnn': False}, {'config.model.lrn': 'abc'},
                                   {'model.lrn': False}])
def test_check_point_rejects_bad_points(point):
  config = default.get_config()
  config.lock()
  with pytest.raises((AttributeError, KeyError, TypeError)):
    sweep_runner.check_point(config, point)


def test_dry_run_prints_one_command_per_point(tmp_path):
  sweep_file = os.path.join(REPO, 'configs', 'sweeps', 'ablations.py')
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', 'sweep.py'), '--config=configs/default.py',
       f'--sweep={sweep_file}', f'--workdir_root={tmp_path}', '--dry_run',
       '--config.total_steps=7', '--', '--num_processes=1'],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
  lines = result.stdout.splitlines()
  sweep = sweep_runner.load_sweep(sweep_file)
  assert len(lines) == len(sweep)
  for line, point in zip(lines, sweep):
    assert '-m alexnet_jax.main --config=configs/default.py' in line
    assert f'--workdir={tmp_path}/{sweep_runner.point_name(point)}' in line
    args = line.split()
    shared = len(args) - len(point) - 2  # shared flags, then the point's own (which win)
    assert args[shared:shared + 2] == ['--config.total_steps=7', '--num_processes=1']
    for key, value in point.items():
      assert f'--{key}={value}' in line
  assert not os.listdir(tmp_path)  # nothing ran


SWEEP_PY = os.path.join(REPO, 'launch', 'sweep.py')
FAKE_MAIN = os.path.join(REPO, 'tests', 'fake_main.py')


def _fake_sweep(tmp_path, root, plan, *flags, env=None, seeds=range(4)):
  """sweep.py over points seed=0..3 whose runs are tests/fake_main.py's, doing what plan says
  ({seed: 'finish' | 'fail' | 'stop' | 'wait'}): the command and its environment."""
  sweep_file = tmp_path / 'seeds.py'
  sweep_file.write_text(
      f'def get_sweep():\n  return [{{"config.seed": s}} for s in {list(seeds)}]\n')
  (tmp_path / 'plan.json').write_text(json.dumps({str(k): v for k, v in plan.items()}))
  command = [sys.executable, SWEEP_PY, '--config=configs/default.py', f'--sweep={sweep_file}',
             f'--workdir_root={root}', f'--launch_with={sys.executable} {FAKE_MAIN}', *flags]
  environ = dict(os.environ, FAKE_PLAN=str(tmp_path / 'plan.json'),
                 FAKE_GATE=str(tmp_path / 'gate'), FAKE_CALLS=str(tmp_path / 'calls.jsonl'),
                 **(env or {}))
  return command, environ


def _calls(tmp_path) -> list[dict]:
  path = tmp_path / 'calls.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _most_at_once(intervals) -> int:
  events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
  running = most = 0
  for _, change in events:  # an end sorts before a start at the same time
    running += change
    most = max(most, running)
  return most


def test_parallel_runs_k_points_at_once_each_on_its_share_of_the_gpus(tmp_path):
  root = tmp_path / 'sweep'
  command, env = _fake_sweep(tmp_path, root, {}, '--parallel=2',
                             env={'CUDA_VISIBLE_DEVICES': '0,1,2,3', 'FAKE_SECONDS': '1'})
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  calls = _calls(tmp_path)
  assert sorted(c['seed'] for c in calls) == [0, 1, 2, 3]
  assert _most_at_once([(c['start'], c['end']) for c in calls]) == 2
  assert {c['CUDA_VISIBLE_DEVICES'] for c in calls} == {'0,1', '2,3'}
  for a in calls:  # two points at once never share a GPU
    for b in calls:
      if a is not b and a['start'] < b['end'] and b['start'] < a['end']:
        assert a['CUDA_VISIBLE_DEVICES'] != b['CUDA_VISIBLE_DEVICES']
  for seed in range(4):  # each point's output in its log
    assert (root / 'sweep_logs' / f'seed={seed}.log').exists()
    assert f'started: seed={seed}' in result.stdout


def test_parallel_splits_the_cpu_devices_or_the_gpus_and_refuses_too_few_gpus():
  split = sweep_runner.device_groups
  env = {'XLA_FLAGS': '--xla_cpu_foo=1 --xla_force_host_platform_device_count=8', 'PATH': ''}
  assert split(2, env) == [
      {'XLA_FLAGS': '--xla_cpu_foo=1 --xla_force_host_platform_device_count=4'}] * 2
  assert split(3, {'PATH': ''}) == [{'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}] * 3
  assert split(1, env) == [{}]
  assert split(2, {'CUDA_VISIBLE_DEVICES': '4,5,6'}) == [{'CUDA_VISIBLE_DEVICES': '4'},
                                                        {'CUDA_VISIBLE_DEVICES': '5'}]
  with pytest.raises(sweep_runner.UsageError, match='--parallel=2 or less'):
    split(4, {'CUDA_VISIBLE_DEVICES': '0,1'})


def test_a_running_sweep_is_reported_point_by_point_and_run_again_skips_what_is_done(tmp_path):
  """Point states while a sweep runs (report's table), then the sweep submitted again twice: the
  finished, running and queued points are skipped, the failed and stopped ones run again."""
  root = tmp_path / 'sweep'
  command, env = _fake_sweep(tmp_path, root, {0: 'finish', 1: 'fail', 2: 'wait', 3: 'finish'})
  first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 60
    while not (sweeps.is_sweep(str(root)) and 'running' == sweeps.point_state(
        str(root), 'seed=2', sweeps.read(str(root))['submissions'], None).state):
      assert first.poll() is None and time.time() < deadline, first.stdout.read()
      time.sleep(0.05)
    result = run_module('alexnet_jax.tools.report', root, f'--output_dir={tmp_path / "report"}')
    assert result.returncode == 0, result.stderr[-2000:]
    states = {name: state for name, state, _ in
              [line.strip('| ').split(' | ') for line in result.stdout.splitlines()[2:6]]}
    assert states == {'seed=0': 'finished', 'seed=1': 'failed', 'seed=2': 'running',
                      'seed=3': 'queued'}, result.stdout
    assert 'exit status 3' in result.stdout  # a failed point's status
    # Again while it runs: only seed=1 runs (and stops early this time: exit 0 at half its steps).
    command, env = _fake_sweep(tmp_path, root, {1: 'stop', 2: 'wait'})
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [c['seed'] for c in _calls(tmp_path)] == [0, 1, 1]
    for name, state in (('seed=0', 'finished'), ('seed=2', 'running'), ('seed=3', 'queued')):
      assert f'skipped ({state}: ' in again.stdout and f'): {name}' in again.stdout
  finally:
    (tmp_path / 'gate').touch()
    assert first.wait(timeout=60) == 1  # seed=1 failed in it
  assert {p.name: p.state for p in sweeps.states(str(root))} == {
      'seed=0': 'finished', 'seed=1': 'stopped', 'seed=2': 'finished', 'seed=3': 'finished'}
  # Once more: the stopped point runs (to its end), and then nothing is left to run.
  command, env = _fake_sweep(tmp_path, root, {})
  for _ in range(2):
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
  assert [c['seed'] for c in _calls(tmp_path)] == [0, 1, 1, 2, 3, 1]
  assert 'nothing to run' in result.stdout
  assert {p.state for p in sweeps.states(str(root))} == {'finished'}
  # Finished, but with other flags (a longer run): every point runs again.
  result = subprocess.run(command + ['--config.total_steps=8'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr[-2000:]
  assert [c['seed'] for c in _calls(tmp_path)][6:] == [0, 1, 2, 3]


def test_bad_sweep_flags_end_in_one_line_naming_the_fix(tmp_path):
  command, env = _fake_sweep(tmp_path, tmp_path / 'sweep', {})
  no_sbatch = dict(env, PATH=os.path.dirname(sys.executable))
  cases = [(['--submit=slurm'], no_sbatch, "needs SLURM's sbatch, and none is on PATH"),
           (['--parallel=0'], env, '--parallel=0: give the number of points'),
           (['--submit=slurm', '--parallel=2'], env, 'with --submit=slurm, --max_parallel=K'),
           (['--max_parallel=2'], env, 'are for --submit=slurm; here, --parallel=K')]
  with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
    results = list(pool.map(lambda case: subprocess.run(
        command + case[0], cwd=REPO, env=case[1], capture_output=True, text=True, timeout=60),
                            cases))
  for (_, _, message), result in zip(cases, results):
    assert message in error_line(result)
  assert not _calls(tmp_path) and not (tmp_path / 'sweep' / 'sweep.json').exists()


def _rows(workdir) -> list[dict]:
  """metrics.jsonl less the wall-clock fields."""
  return [{k: v for k, v in r.items() if k not in ('time', 'images_per_sec')}
          for r in metrics_records(workdir)]


def test_a_slurm_array_of_4_points_2_at_a_time_ends_as_the_points_run_one_after_another(
    slurm, tmp_path, monkeypatch):
  """conftest's TINY run at 2 to 5 steps: submitted as one job array (2 at a time) to the real
  SLURM of conftest's slurm fixture, and run here one after another, at the same time."""
  monkeypatch.setenv('SLURM_CONF', slurm.conf)  # sweeps.states asks this cluster's squeue
  sweep_file = tmp_path / 'steps.py'
  sweep_file.write_text(
      'def get_sweep():\n  return [{"config.total_steps": n} for n in (2, 3, 4, 5)]\n')
  flags = [f for f in tiny_flags() if not f.startswith('--config.total_steps=')]
  command = [sys.executable, SWEEP_PY, '--config=configs/default.py', f'--sweep={sweep_file}',
             *flags]
  # One CPU device: resume_test's and slurm_test's one-device programs, in the session's cache.
  env = cli_environ({**slurm.env, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1'})
  one_by_one = subprocess.Popen(command + [f'--workdir_root={tmp_path / "one_by_one"}'],
                                cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
  # The array once the first point here has ended: its programs (every point's: total_steps is
  # no constant of them) are then in the cache, where 3 runs at once would each compile them.
  first = sweeps.status_path(str(tmp_path / 'one_by_one'), 'total_steps=2')
  deadline = time.time() + 300
  while not (os.path.exists(first) and '"exited"' in open(first).read()):
    assert one_by_one.poll() is None and time.time() < deadline, one_by_one.stdout.read()[-3000:]
    time.sleep(0.1)
  root = str(tmp_path / 'array')
  submit = command + [f'--workdir_root={root}', '--submit=slurm', '--max_parallel=2']
  result = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  [submission] = sweeps.read(root)['submissions']
  assert '--array=0,1,2,3%2' in result.stdout and submission['how'] == 'slurm'
  seen, reported, deadline = set(), None, time.time() + 300
  while slurm.queued(submission['id']) and time.time() < deadline:
    states = sweeps.states(root)
    assert sum(p.state == 'running' for p in states) <= 2
    seen |= {(p.state, p.detail.split(', ')[0]) for p in states}
    if reported is None and {'running', 'queued'} <= {state for state, _ in seen}:  # tools.report
      reported = run_module('alexnet_jax.tools.report', root, '--json', env=slurm.env)
    time.sleep(0.2)
  fields = slurm.wait_for(submission['id'])
  assert {p.state for p in sweeps.states(root)} == {'finished'}, [
      open(sweeps.log_path(root, p.name)).read()[-2000:] for p in sweeps.states(root)]
  assert fields['ExitCode'] == '0:0'
  assert reported is not None and reported.returncode == 0, seen
  tasks = {f'{submission["id"]}_{i}' for i in range(4)}  # squeue's word, 2 pending at first
  assert {('queued', f'SLURM array task {t} (PD)') for t in tasks} & seen, seen
  assert {('running', f'SLURM array task {t} (R)') for t in tasks} & seen, seen
  points = [json.loads(line) for line in reported.stdout.splitlines() if '"point"' in line]
  assert len(points) == 4 and {p['state'] for p in points} <= {'queued', 'running', 'finished'}
  assert one_by_one.wait(timeout=300) == 0, one_by_one.stdout.read()[-3000:]
  for n in (2, 3, 4, 5):
    name = f'total_steps={n}'
    assert _rows(os.path.join(root, name)) == _rows(tmp_path / 'one_by_one' / name)
    assert _rows(os.path.join(root, name))[-1]['step'] == n
  times = {}  # each point's start and end, from its status lines
  for n in (2, 3, 4, 5):
    with open(sweeps.status_path(root, f'total_steps={n}')) as f:
      lines = [json.loads(line) for line in f]
    assert [l['state'] for l in lines] == ['running', 'exited'] and lines[1]['code'] == 0
    times[n] = (lines[0]['time'], lines[1]['time'])
  assert _most_at_once(times.values()) == 2
  again = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert again.returncode == 0 and 'nothing to run' in again.stdout, again.stderr[-2000:]
  assert len(sweeps.read(root)['submissions']) == 1


def test_report_of_a_sweep_none_of_whose_points_started_is_its_table_of_points(tmp_path):
  from alexnet_jax.tools import report  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / 'sweep')
  sweeps.write(root, {'points': [{'name': 'baseline'}, {'name': 'seed=1'}], 'submissions': [
      {'id': 'here', 'how': 'local', 'host': sweeps.host(), 'pid': os.getpid(), 'time': 0,
       'tasks': {'baseline': None, 'seed=1': None}}]})  # this process: a live sweep
  states = report.sweep_states([root])
  assert [(p.name, p.state) for p in states] == [('baseline', 'queued'), ('seed=1', 'queued')]
  assert report.write_report([root], str(tmp_path / 'out'), states=states) == []
  text = (tmp_path / 'out' / 'report.md').read_text()
  assert '| baseline | queued |' in text and '| seed=1 | queued |' in text
