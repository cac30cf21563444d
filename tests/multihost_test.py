"""2 processes x 2 CPU devices (launch/local_multiprocess.sh, gloo) give the numbers of 1 x 4, and
process 0 alone reads the checkpoint files at a resume.

The three runs start together (one module fixture). 2 devices per process, not 4: the same
cross-process all-reduce and split classifier, 2.1 CPU-minutes for the file, not 2.5.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from conftest import tiny_flags

LAUNCHER = os.path.join(REPO, 'launch', 'local_multiprocess.sh')
TINY = ['--config=configs/default.py', *tiny_flags(total_steps=3, log_every_steps=1)]
# XLA:CPU sums in a different order when the devices sit in other processes (gloo all-reduce) or
# when the classifier is split: a few float32 ulps on the loss after 3 steps; 2e-6 leaves room.
RTOL = 2e-6
RUNS = {  # name: (processes, devices per process, mesh flags)
    'reference': (1, 4, []),
    'data_parallel': (2, 2, []),
    'hybrid_across_processes': (2, 2, ['--config.mesh.data=1', '--config.mesh.model=-1']),
}


def _environ(devices: int) -> dict:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('JAX_', 'XLA_FLAGS')) or k == 'JAX_COMPILATION_CACHE_DIR'}
  env.update(JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO,
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return env


def _start(workdir: str, processes: int, devices: int, flags: list):
  logs = os.path.join(workdir, 'logs')
  os.makedirs(logs)
  if processes == 1:
    command = [sys.executable, '-m', 'alexnet_jax.main']
    out = open(os.path.join(logs, 'process_0.log'), 'w')  # pylint: disable=consider-using-with
  else:
    command, out = ['bash', LAUNCHER, str(processes), str(devices)], subprocess.DEVNULL
  env = dict(_environ(devices), LOG_DIR=logs, PYTHON=sys.executable)
  return subprocess.Popen(command + TINY + flags + [f'--workdir={workdir}'], cwd=REPO, env=env,
                          stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope='module')
def workdirs(tmp_path_factory):
  root = tmp_path_factory.mktemp('multihost')
  started = {name: _start(str(root / name), *spec) for name, spec in RUNS.items()}
  for name, process in started.items():
    try:
      code = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
      process.kill()
      code = 'timeout'
    if code != 0:
      tails = [open(f).read()[-3000:] for f in sorted(glob.glob(str(root / name / 'logs/*')))]
      pytest.fail(f'{name} failed ({code}):\n' + '\n'.join(tails))
  return {name: str(root / name) for name in RUNS}


def _metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _numbers(records) -> dict:
  keys = ('loss', 'top1', 'top5', 'count')
  return {(r['step'], r['split'], k): r[k] for r in records for k in keys if k in r}


@pytest.mark.parametrize('name', ['data_parallel', 'hybrid_across_processes'])
def test_two_processes_match_one_process(workdirs, name):
  expected = _numbers(_metrics(workdirs['reference']))
  got = _numbers(_metrics(workdirs[name]))
  assert sorted(got) == sorted(expected)
  assert [k for k in expected if k[1] == 'eval'], 'no eval at the end'
  for key, value in expected.items():
    np.testing.assert_allclose(got[key], value, rtol=RTOL, err_msg=str(key))


def test_only_process_zero_writes_metrics(workdirs):
  workdir = workdirs['data_parallel']
  records = _metrics(workdir)
  points = [(r['step'], r['split']) for r in records]
  assert points == [(1, 'train'), (2, 'train'), (3, 'train'), (3, 'eval')]  # no duplicates
  assert len(glob.glob(os.path.join(workdir, 'events.out.tfevents*'))) == 1  # one writer
  assert os.path.exists(os.path.join(workdir, 'checkpoints', '3', 'commit_success.txt'))


def test_a_resume_reads_the_checkpoint_files_on_one_process_only(workdirs, tmp_path):
  """Process 0 hashes every file of every step at start and shares its verdicts: N hosts do not
  read a workdir's checkpoints N times."""
  workdir = str(tmp_path / 'run')  # a copy: the other tests read the original as it was written
  shutil.copytree(workdirs['data_parallel'], workdir, ignore=shutil.ignore_patterns('logs'))
  code = _start(workdir, 2, 2, []).wait(timeout=600)  # resumes at its last step, and ends
  logs = [open(f).read() for f in sorted(glob.glob(os.path.join(workdir, 'logs', '*.log')))]
  assert code == 0 and len(logs) == 2, '\n'.join(text[-3000:] for text in logs)
  assert all(f'Resumed from {workdir}/checkpoints/3.' in text for text in logs)
  checked = [i for i, text in enumerate(logs) if 'Checked the files of 1 checkpoints' in text]
  assert checked == [0]


def test_launcher_returns_first_failure_and_stops_the_others(tmp_path):
  fake_python = tmp_path / 'python'
  fake_python.write_text(
      '#!/bin/bash\n'
      '[[ $1 == -c ]] && { echo 1; exit 0; }\n'  # the free-port probe
      'case "$*" in *--process_id=1*) sleep 0.5; exit 3;; esac\n'
      'exec sleep 60\n')
  fake_python.chmod(0o755)
  start = time.monotonic()
  result = subprocess.run(['bash', LAUNCHER, '3', '1', '--x=1'], env=dict(
      os.environ, PYTHON=str(fake_python), KILL_AFTER='2'), capture_output=True, text=True,
                          timeout=30)
  assert result.returncode == 3, result.stderr
  assert time.monotonic() - start < 20
