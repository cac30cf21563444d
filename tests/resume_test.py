"""The CLI interrupted for real: SIGTERM and kill -9, then the same command; two-process preemption;
a soak of kill -9 at random moments (ALEXNET_SOAK=1: 20 kills instead of 2).

Each run is `python -m alexnet_jax.main` in a subprocess (conftest's start). The runs share the
session's persistent JAX compilation cache (conftest's TEST_CACHE): the first run of a config
compiles, the others load.
"""
import os
import random
import signal
import time

from conftest import TINY
from conftest import finish
from conftest import FOLDER_RUN_ENV
from conftest import folder_run_command as flags
from conftest import free_port
from conftest import main_command
from conftest import metrics_records
from conftest import start
from conftest import wait_until

TOTAL_STEPS = 12  # folder_run_command's
# conftest's TINY model and synthetic data (no data to prepare), a log point each step. The same
# programs as main_test's and multihost_test's TINY runs on 1 and 2 x 4 devices (the step schedule's
# first decay, 25 epochs of 4 steps, lies beyond 100 steps): loaded from the session's cache.
SYNTHETIC = {**{key: TINY[key] for key in ('data.name', 'data.image_size', 'data.batch_size',
                                           'model.num_classes', 'model.fc_width')},
             'log_every_steps': 1}


def logged_steps(workdir, split='train'):
  return {r['step']: r for r in metrics_records(workdir, being_written=True) if r['split'] == split}


def wait_for_step(process, workdir, step, log_path):
  wait_until(process, lambda: max(logged_steps(workdir), default=0) >= step, f'step {step}',
             log_path)


def test_sigterm_then_kill_9_then_resume_logs_the_uninterrupted_numbers(folder_reference_run,
                                                                        tmp_path):
  """Loss, top-1 and top-5 of every train and eval point equal, bit for bit, a run never stopped
  (conftest's folder_reference_run: the same command, its data checked and its programs cached)."""
  data, reference = folder_reference_run
  interrupted = str(tmp_path / 'interrupted')

  # 1. SIGTERM: saves at the step it is at and exits with status 0.
  log = tmp_path / 'run1.log'
  run = start(flags(interrupted, data), log, FOLDER_RUN_ENV)
  wait_for_step(run, interrupted, 2, log)
  run.send_signal(signal.SIGTERM)
  code, text = finish(run, log)
  assert code == 0, text[-3000:]
  preempted = max(logged_steps(interrupted))
  assert f'Preempted at step {preempted}; checkpoint saved' in text
  assert os.path.isdir(os.path.join(interrupted, 'checkpoints', str(preempted)))
  assert preempted + 5 < TOTAL_STEPS

  # 2. The same command resumes there; kill -9 a step after its next checkpoint is complete.
  log = tmp_path / 'run2.log'
  run = start(flags(interrupted, data), log, FOLDER_RUN_ENV)
  saved = (preempted // 3 + 1) * 3  # checkpoint.every_steps=3
  # Complete: under its final name and with its file list (written just after Orbax's commit; a
  # kill between the two sets the step aside as unverifiable, and the steps after it run again).
  wait_until(run, lambda: os.path.isfile(os.path.join(interrupted, 'checkpoints', str(saved),
                                                      'files.json')),
             f'checkpoint {saved}', log)
  wait_for_step(run, interrupted, saved + 1, log)
  run.send_signal(signal.SIGKILL)
  code, text = finish(run, log)
  assert code == -signal.SIGKILL
  assert f'Resumed from {interrupted}/checkpoints/{preempted}.' in text
  killed_at = max(logged_steps(interrupted))

  # 3. The same command again: from the newest checkpoint (older than the kill) to the end.
  log = tmp_path / 'run3.log'
  code, text = finish(start(flags(interrupted, data), log, FOLDER_RUN_ENV), log)
  assert code == 0, text[-3000:]
  resumed = int(text.split(f'Resumed from {interrupted}/checkpoints/')[1].split('.')[0])
  assert resumed == saved < killed_at  # the steps after it are done again

  for split in ('train', 'eval'):
    want, got = logged_steps(reference, split), logged_steps(interrupted, split)
    assert sorted(got) == sorted(want) and len(want) == (TOTAL_STEPS if split == 'train' else 3)
    for step in want:
      assert [got[step][k] for k in ('loss', 'top1', 'top5')] == [
          want[step][k] for k in ('loss', 'top1', 'top5')], (split, step)


def test_sigterm_to_one_of_two_processes_saves_the_same_step_on_both_and_exits_0(tmp_path):
  workdir = str(tmp_path / 'w')
  command = main_command(workdir, **SYNTHETIC, total_steps=100, eval_every_steps=0) + [
      f'--coordinator_address=127.0.0.1:{free_port()}', '--num_processes=2']
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}  # 2 x 4 = 8 devices
  logs = [tmp_path / f'process{i}.log' for i in range(2)]
  runs = [start(command + [f'--process_id={i}'], logs[i], env) for i in range(2)]
  try:
    wait_for_step(runs[0], workdir, 2, logs[0])
    runs[1].send_signal(signal.SIGTERM)  # one host is preempted
    results = [finish(run, log) for run, log in zip(runs, logs)]
  finally:
    for run in runs:
      if run.poll() is None:
        run.kill()
  steps = [int(text.split('Preempted at step ')[1].split(';')[0]) for _, text in results]
  assert [code for code, _ in results] == [0, 0], results[0][1][-3000:]
  assert steps[0] == steps[1] < 100
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == [str(steps[0])]


SOAK = os.environ.get('ALEXNET_SOAK') == '1'  # the long variant: 20 kills over 120 steps


def synthetic(workdir, total_steps):
  """SYNTHETIC saved every 2 steps (keep 2), evaluated every 5."""
  return main_command(workdir, **SYNTHETIC, total_steps=total_steps, eval_every_steps=5,
                      **{'checkpoint.every_steps': 2, 'checkpoint.keep': 2})


def _saving(folder, before):
  """True once a save that was not in progress at `before` is being written."""
  names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
  return any('orbax-checkpoint-tmp' in n for n in names - before)


def test_soak_kill_9_at_random_moments_then_resume_logs_the_uninterrupted_metrics(tmp_path):
  """kill -9 at random moments after each run's first new step, every third one as a save is being
  written; then the same command to the end. metrics.jsonl equals an uninterrupted run's in every
  field but the wall-clock ones (time, images_per_sec)."""
  kills, total = (20, 120) if SOAK else (2, 20)  # 2: a random moment, then as a save is written
  # One device: no cross-device rendezvous, which XLA:CPU aborts after 40 s on an overloaded host.
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}
  rng = random.Random(int(os.environ.get('ALEXNET_SOAK_SEED', '0')))
  reference, soaked = str(tmp_path / 'reference'), str(tmp_path / 'soaked')
  folder = os.path.join(soaked, 'checkpoints')
  uninterrupted = start(synthetic(reference, total), tmp_path / 'reference.log', env)
  for kill in range(kills):
    log = tmp_path / f'kill{kill}.log'
    before, done = set(os.listdir(folder)) if os.path.isdir(folder) else set(), max(
        logged_steps(soaked), default=0)
    run = start(synthetic(soaked, total), log, env)
    wait_for_step(run, soaked, done + 1, log)  # each run gets further than the one before
    if kill % 3 == 1:
      while not _saving(folder, before) and run.poll() is None:
        time.sleep(0.002)
    else:
      time.sleep(rng.uniform(0, 0.4))
    run.send_signal(signal.SIGKILL)
    code, text = finish(run, log)
    assert code == -signal.SIGKILL and 'Traceback' not in text, text[-3000:]
  log = tmp_path / 'last.log'
  code, text = finish(start(synthetic(soaked, total), log, env), log)
  assert code == 0, text[-3000:]
  code, text = finish(uninterrupted, tmp_path / 'reference.log')
  assert code == 0, text[-3000:]
  wall_clock = ('time', 'images_per_sec')
  want, got = ([{k: v for k, v in r.items() if k not in wall_clock}
                for r in metrics_records(w, being_written=True)] for w in (reference, soaked))
  assert len(want) == total + total // 5 and got == want
