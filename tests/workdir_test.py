"""One run per workdir: a second run stops at once naming the live one; a killed run leaves no lock."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from alexnet_jax import train
from alexnet_jax import workdir
from conftest import REPO
from conftest import snapshot
from conftest import tiny_config

_HOLD = ('import sys, time\nfrom alexnet_jax import workdir\n'
         'with workdir.lock(sys.argv[1]):\n  print("held", flush=True)\n  time.sleep(600)\n')


def test_a_second_run_stops_at_once_naming_the_live_run_and_kill_9_frees_the_workdir(tmp_path):
  path = str(tmp_path / 'run')
  os.makedirs(path)
  (tmp_path / 'run' / 'metrics.jsonl').write_text('{"step": 1, "split": "train"}\n')
  holder = subprocess.Popen([sys.executable, '-c', _HOLD, path], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)  # a live run, as far as the lock goes
  try:
    assert holder.stdout.readline() == 'held\n'
    before = snapshot(path)
    start = time.perf_counter()
    with pytest.raises(workdir.InUseError) as error:  # main.py prints it as `error: ...`
      train.train_and_evaluate(tiny_config(), path)
    took = time.perf_counter() - start
    assert str(error.value).startswith(
        f'workdir {path} is in use by another run: pid {holder.pid} on host {socket.gethostname()}')
    assert '\n' not in str(error.value) and snapshot(path) == before
    assert took < 60, took  # before any step or restore: the model is only initialised
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with workdir.lock(path):  # the kernel dropped the dead run's flock: no stale lock to remove
    assert os.path.exists(os.path.join(path, workdir.LOCK))
  assert not os.path.exists(os.path.join(path, workdir.LOCK))


def test_a_finished_run_leaves_no_lock_and_the_next_takes_it(tmp_path):
  path = str(tmp_path / 'run')
  with workdir.lock(path):
    with pytest.raises(workdir.InUseError):  # another descriptor, even in this process
      with workdir.lock(path):
        pass
  with workdir.lock(path):
    pass
  assert os.listdir(path) == []
