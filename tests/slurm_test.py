"""launch/slurm.sbatch under a real SLURM (conftest's slurm fixture), with README's commands: 2
tasks run one training with jax.distributed initialised from SLURM's environment and log the
numbers of one process; `scancel --signal=TERM` makes both save the same step and exit 0, and the
same sbatch command resumes and ends with the metrics of one process never stopped.

One job, stopped and submitted again, beside the one-process reference outside SLURM (one module
fixture). README's flags are conftest's TINY model on synthetic data with a log point each step,
one CPU device per process: the reference's programs are resume_test's one-device ones (loaded
from the session's compilation cache when it ran first).
"""
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from conftest import cli_environ
from conftest import finish
from conftest import metrics_records
from conftest import start

RTOL = 2e-6  # multihost_test's: another float32 summation order across processes
NUMBERS = ('loss', 'top1', 'top5', 'count')


def readme_commands():
  """(environment, sbatch options, script arguments, scancel words) of README's SLURM block."""
  with open(os.path.join(REPO, 'README.md')) as f:
    block = re.search(r'<!-- slurm-commands -->\n```\n(.*?)```', f.read(), re.S).group(1)
  lines = [shlex.split(line, comments=True) for line in block.replace('\\\n', ' ').splitlines()]
  submit, cancel, again = [words for words in lines if words]
  assert again == submit, 'README resumes with the very command it started with'
  env = dict(w.split('=', 1) for w in submit if re.fullmatch(r'[A-Z_]+=.*', w))
  words = [w for w in submit if not re.fullmatch(r'[A-Z_]+=.*', w)]
  script = words.index('launch/slurm.sbatch')
  assert words[0] == 'sbatch' and cancel[:2] == ['scancel', '--signal=TERM']
  return env, words[1:script], words[script + 1:], cancel


def _sbatch(slurm, workdir, log_folder):
  """README's sbatch command on this cluster, its workdir moved to `workdir`: the job id."""
  env, options, args, _ = readme_commands()
  args = [f'--workdir={workdir}' if a.startswith('--workdir=') else a for a in args]
  environ = cli_environ({'XLA_FLAGS': None, **env, **slurm.env, 'JAX_PLATFORMS': 'cpu',
                         'PYTHON': sys.executable})
  result = subprocess.run(['sbatch', '--parsable', f'--output={log_folder}/%j.out', *options,
                           'launch/slurm.sbatch', *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  return result.stdout.strip().split(';')[0]


def _ended(slurm, job, log_folder):
  """(scontrol's fields, the job's output) once it has ended."""
  fields = slurm.wait_for(job)
  with open(os.path.join(log_folder, f'{job}.out')) as f:
    return fields, f.read()


def _numbers(workdir):
  return {(r['step'], r['split'], k): r[k] for r in metrics_records(workdir) for k in NUMBERS
          if k in r}


@pytest.fixture(scope='module')
def stopped_job(slurm, tmp_path_factory):
  """(workdir, [(scontrol fields, output) of each submission], reference workdir): README's job,
  cancelled with SIGTERM once it has logged step 2, then submitted again; beside it, the same
  flags in one process outside SLURM, never stopped."""
  root = tmp_path_factory.mktemp('slurm_job')
  logs = str(root / 'logs')
  os.makedirs(logs)
  _, _, args, cancel = readme_commands()
  reference = str(root / 'reference')
  command = [sys.executable, '-m', 'alexnet_jax.main'] + [
      f'--workdir={reference}' if a.startswith('--workdir=') else a for a in args]
  one_process = start(command, root / 'reference.log', {'XLA_FLAGS': None})  # one CPU device
  workdir = str(root / 'run')
  job = _sbatch(slurm, workdir, logs)
  deadline, asked = time.time() + 300, 0.0
  while max((r['step'] for r in metrics_records(workdir, being_written=True)), default=0) < 2:
    if time.time() > asked + 1:  # scontrol once a second: each call costs CPU the job needs
      assert time.time() < deadline and slurm.job(job).get('JobState') in (
          'PENDING', 'RUNNING'), _ended(slurm, job, logs)
      asked = time.time()
    time.sleep(0.05)
  subprocess.run([job if w == 'JOBID' else w for w in cancel], env={**os.environ, **slurm.env},
                 check=True, timeout=60)
  submissions = [_ended(slurm, job, logs)]
  submissions.append(_ended(slurm, _sbatch(slurm, workdir, logs), logs))
  code, text = finish(one_process, root / 'reference.log')
  assert code == 0, text[-3000:]
  return workdir, submissions, reference


def test_two_tasks_initialise_from_slurm_and_log_the_one_process_numbers(stopped_job):
  workdir, submissions, reference = stopped_job
  for fields, output in submissions:
    assert (fields['JobState'], fields['ExitCode']) == ('COMPLETED', '0:0'), output[-3000:]
    assert output.count('jax.distributed.initialize() for SLURM.') == 2
    assert 'Process 0 of 2.' in output and 'Process 1 of 2.' in output
  expected, got = _numbers(reference), _numbers(workdir)
  assert sorted(got) == sorted(expected) and [k for k in expected if k[1] == 'eval']
  for key, value in expected.items():  # the steps before the stop and after the resume
    np.testing.assert_allclose(got[key], value, rtol=RTOL, err_msg=str(key))


def test_scancel_term_saves_one_step_on_both_and_the_same_sbatch_resumes_from_it(stopped_job):
  workdir, [(fields, output), (_, resumed)], _ = stopped_job
  steps = [int(s) for s in re.findall(r'Preempted at step (\d+); checkpoint saved', output)]
  assert len(steps) == 2 and steps[0] == steps[1], output[-3000:]  # one line per process
  total = int(re.search(r'--config.total_steps=(\d+)', shlex.join(readme_commands()[2])).group(1))
  assert 2 <= steps[0] < total and fields['ExitCode'] == '0:0'  # both exited 0 (srun: the worst)
  assert resumed.count(f'Resumed from {workdir}/checkpoints/{steps[0]}.') == 2
  assert [r['step'] for r in metrics_records(workdir) if r['split'] == 'train'] == list(
      range(1, total + 1))  # each step logged once
