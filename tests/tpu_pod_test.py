"""launch/tpu_pod.sh, README's command, on a fake two-worker slice: sync, clean, run, collect logs."""
import json
import os
import re
import shlex
import subprocess
import sys
import venv

from alexnet_jax import paths
from conftest import REPO
from conftest import TEST_CACHE
from conftest import free_port
from conftest import tiny_flags
from tests import fake_gcloud

TINY = tiny_flags(total_steps=2, log_every_steps=1)


def readme_command():
  """(environment, arguments) of README's TPU pod command."""
  with open(os.path.join(REPO, 'README.md')) as f:
    block = re.search(r'<!-- tpu-pod-command -->\n```\n(.*?)```', f.read(), re.S).group(1)
  words = shlex.split(block.replace('\\\n', ' '))
  env = dict(w.split('=', 1) for w in words if re.fullmatch(r'[A-Z_]+=.*', w))
  return env, [w for w in words if not re.fullmatch(r'[A-Z_]+=.*', w)]


def _sleeper(cwd):
  """A process that looks like a run of this project left behind by a killed launch."""
  os.makedirs(cwd, exist_ok=True)
  return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '-m',
                           'alexnet_jax.main'], cwd=cwd)


def _fake_path(tmp_path, python=sys.executable):
  """PATH with the fake gcloud and, as the workers' python3, `python` (default: this one)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name, command in (('gcloud', f'{shlex.quote(python)} {shlex.quote(fake_gcloud.__file__)}'),
                        ('python3', shlex.quote(python))):
    # exec, not a symlink: a symlinked venv python finds no pyvenv.cfg and runs as the base one
    (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    (bin_dir / name).chmod(0o755)
  return f'{bin_dir}:{os.environ["PATH"]}'


def test_workers_python3_is_the_given_interpreter_inside_a_virtual_environment(tmp_path):
  venv.create(tmp_path / 'venv', system_site_packages=True)
  python = str(tmp_path / 'venv' / 'bin' / 'python')
  result = subprocess.run(['python3', '-c', 'import sys; print(sys.prefix)'], check=True,
                          env=dict(os.environ, PATH=_fake_path(tmp_path, python)),
                          capture_output=True, text=True)
  assert result.stdout.strip() == str(tmp_path / 'venv')


def test_readme_pod_command_cleans_syncs_runs_every_worker_and_collects_logs(tmp_path,
                                                                            gcs_emulator):
  """The README's gs:// workdir, on the Cloud Storage emulator (conftest's gcs_emulator)."""
  env_vars, args = readme_command()
  assert env_vars == {'SYNC': '1', 'CLEAN': '1'} and args[0] == 'launch/tpu_pod.sh'
  workdir = next(a.split('=', 1)[1] for a in args if a.startswith('--workdir='))
  assert workdir.startswith('gs://my-bucket/')
  tpu, zone = args[1], args[2]
  workers = tmp_path / 'slice'
  stale = _sleeper(workers / 'worker_0' / 'alexnet_jax')  # in worker 0's checkout
  bystander = _sleeper(tmp_path / 'other_job')  # the same command line, another folder
  lock = tmp_path / 'libtpu_lockfile'
  lock.touch()
  try:
    with fake_gcloud.slice_metadata(2) as metadata:
      env = dict(os.environ, **env_vars, **gcs_emulator, PATH=_fake_path(tmp_path), FAKE_TPU_NAME=tpu,
                 FAKE_TPU_WORKERS='2', FAKE_TPU_ROOT=str(workers), FAKE_METADATA=','.join(metadata),
                 FAKE_GCLOUD_LOG=str(tmp_path / 'gcloud.jsonl'), LOG_DIR=str(tmp_path / 'logs'),
                 LIBTPU_LOCKFILE=str(lock), COORDINATOR_PORT=str(free_port()),
                 JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=4',
                 JAX_COMPILATION_CACHE_DIR=TEST_CACHE,
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
      result = subprocess.run(args + TINY, cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert stale.wait(timeout=10) == -15  # SIGTERM from CLEAN=1
    assert bystander.poll() is None  # not this checkout's
  finally:
    for process in (stale, bystander):
      process.kill()
  assert not lock.exists()

  calls = [json.loads(line) for line in (tmp_path / 'gcloud.jsonl').read_text().splitlines()]
  # CLEAN=1, then SYNC=1 (mkdir, copy), the run, the logs back
  assert [c[3] for c in calls] == ['ssh', 'ssh', 'scp', 'ssh', 'scp']
  for call in calls:
    assert f'--zone={zone}' in call and '--worker=all' in call
  for i in range(2):  # SYNC=1: every worker runs this checkout's code
    synced = workers / f'worker_{i}' / 'alexnet_jax' / 'alexnet_jax' / 'main.py'
    assert synced.read_text() == open(os.path.join(REPO, 'alexnet_jax', 'main.py')).read()
    log = (tmp_path / 'logs' / f'worker_{i}.log').read_text()
    assert f'Process {i} of 2' in log and 'step 2/2' in log, log[-2000:]
  records = [json.loads(l) for l in paths.read_text(f'{workdir}/metrics.jsonl').splitlines()]
  assert [r['step'] for r in records if r['split'] == 'train'] == [1, 2]


def test_pod_launcher_without_arguments_prints_its_usage():
  result = subprocess.run([os.path.join(REPO, 'launch', 'tpu_pod.sh')], capture_output=True,
                          text=True)
  assert result.returncode == 2 and 'usage:' in result.stderr
