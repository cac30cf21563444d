"""A sweep's state on disk, written by launch/sweep.py and read back by tools.report.

WORKDIR_ROOT/sweep.json holds the points (name, overrides, command) and every submission (a SLURM
job array, or a local run of sweep.py); WORKDIR_ROOT/sweep_logs/NAME.status holds one JSON line per
attempt of a point, appended when it starts and when it exits; NAME.log is its output. A point's
state comes from those, its workdir (finished: it reached its last step) and, for a SLURM array
still known to squeue, the queue.
"""
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import time

from alexnet_jax import errors
from alexnet_jax import paths
from alexnet_jax import runs

SWEEP, LOGS = 'sweep.json', 'sweep_logs'
STATES = ('queued', 'running', 'finished', 'failed', 'stopped', 'not submitted')
_WAITING = ('PD',)  # squeue's codes of a task not yet started; the others hold or ran it


class SweepError(errors.Error, ValueError):
  """A sweep folder whose state cannot be read: the message names the file and the fix."""


@dataclasses.dataclass
class PointState:
  name: str
  state: str  # one of STATES
  detail: str  # where it runs, its progress, its exit status or log: what to do next
  task: str = ''  # the SLURM array task (JOB_INDEX) or the local process of its last submission


def host() -> str:
  """This machine's short name, as `hostname -s` prints it (the SLURM array's status lines)."""
  return socket.gethostname().split('.')[0]


def is_sweep(root: str) -> bool:
  return paths.isfile(os.path.join(root, SWEEP))


def read(root: str) -> dict:
  """sweep.json: {'points': [{'name', 'point', 'command'}], 'submissions': [...]}; empty if new."""
  path = os.path.join(root, SWEEP)
  if not paths.isfile(path):
    return {'points': [], 'submissions': []}
  try:
    return json.loads(paths.read_bytes(path))
  except json.JSONDecodeError as e:
    raise SweepError(f'{path} is not JSON ({e}); move it aside and submit the sweep again '
                     '(finished points are recognised by their workdirs).') from e


def write(root: str, state: dict) -> None:
  """Replaces sweep.json whole (a report reading it meanwhile sees the old or the new one)."""
  paths.makedirs(root)
  path, data = os.path.join(root, SWEEP), json.dumps(state, indent=1).encode()
  if paths.is_remote(path):  # an object is replaced whole or not at all
    paths.write_bytes(path, data)
    return
  with open(path + '.tmp', 'wb') as f:
    f.write(data)
  os.replace(path + '.tmp', path)


def status_path(root: str, name: str) -> str:
  return os.path.join(root, LOGS, f'{name}.status')


def log_path(root: str, name: str) -> str:
  return os.path.join(root, LOGS, f'{name}.log')


def note(root: str, name: str, **fields) -> None:
  """Appends one status line (state, submission, host, pid or code, time) for a point."""
  line = json.dumps({**fields, 'host': host(),
                     'time': time.time()}) + '\n'
  path = status_path(root, name)
  paths.makedirs(os.path.dirname(path))
  if paths.is_remote(path):  # no appends on GCS: the file is a few lines, rewritten whole
    old = paths.read_bytes(path) if paths.exists(path) else b''
    paths.write_bytes(path, old + line.encode())
  else:
    with open(path, 'a') as f:
      f.write(line)


def _status_lines(root: str, name: str) -> list[dict]:
  path = status_path(root, name)
  lines = []
  for text in (paths.read_bytes(path).split(b'\n') if paths.exists(path) else []):
    try:
      lines.append(json.loads(text))
    except json.JSONDecodeError:  # empty, or a line being written
      continue
  return lines


def squeue() -> dict | None:
  """{'JOB_INDEX': squeue state code} of this user's array tasks; None where squeue is absent or
  does not answer (no SLURM here: the status files are then taken at their word)."""
  if not shutil.which('squeue'):
    return None
  try:
    result = subprocess.run(['squeue', '--me', '--noheader', '--array', '--format=%i %t'],
                            capture_output=True, text=True, timeout=30, check=False)
  except (OSError, subprocess.TimeoutExpired):
    return None
  if result.returncode:
    return None
  return dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)


def _alive(host_name: str, pid) -> bool | None:
  """Whether process pid lives (None: it runs on another host, unknown from here)."""
  if host_name != host():
    return None
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError):
    return True
  return True


def point_state(root: str, name: str, submissions: list, queue: dict | None) -> PointState:
  """The state of one point: see STATES and the module's docstring."""
  workdir = os.path.join(root, name)
  run = runs.read(workdir) if runs.is_run(workdir) else None
  progress = f'step {run.last_step}/{run.total_steps or "?"}' if run else 'no metrics yet'
  if run and run.diverged:
    return PointState(name, 'failed', f'diverged at {progress}: see {workdir}/metrics.jsonl')
  if run and run.finished:
    return PointState(name, 'finished', progress)
  log = log_path(root, name)
  output = f'see {log}' if paths.exists(log) else "see sweep.py's output"
  ours = [s for s in submissions if name in s['tasks']]
  if not ours:
    return PointState(name, 'not submitted', progress)
  submission = ours[-1]
  lines = [l for l in _status_lines(root, name) if l.get('submission') == submission['id']]
  last = lines[-1] if lines else None
  if submission['how'] == 'slurm':
    task = f'{submission["id"]}_{submission["tasks"][name]}'
    code = None if queue is None else queue.get(task)
    if code in _WAITING:
      return PointState(name, 'queued', f'SLURM array task {task} ({code})', task)
    if code is not None:
      return PointState(name, 'running', f'SLURM array task {task} ({code}), {progress}', task)
    ended = queue is not None  # squeue answers and has forgotten the task: it ended
    where = f'SLURM array task {task}'
  else:
    task = f'pid {submission["pid"]} on {submission["host"]}'
    ended = _alive(submission['host'], submission['pid']) is False and (
        last is None or _alive(last['host'], last.get('pid')) is False)
    where = f'sweep.py ({task})'
  if last is None:
    if ended:
      return PointState(name, 'stopped', f'{where} ended before it started: submit the sweep '
                        'again', task)
    return PointState(name, 'queued', where, task)
  if last['state'] == 'running':
    if ended:
      return PointState(name, 'failed', f'{where} ended without an exit status (killed?) at '
                        f'{progress}: {output}', task)
    return PointState(name, 'running', f'{where} on {last["host"]}, {progress}', task)
  if last.get('code'):
    return PointState(name, 'failed', f'exit status {last["code"]} at {progress}: {output}',
                      task)
  return PointState(name, 'stopped', f'exited at {progress} before its last step (preempted?): '
                    'submit the sweep again to resume it', task)


def states(root: str, queue=...) -> list[PointState]:
  """The state of every point of the sweep at root, in the sweep's order.

  queue: squeue()'s answer; by default asked here when a submission went to SLURM.
  """
  state = read(root)
  if queue is ...:
    queue = squeue() if any(s['how'] == 'slurm' for s in state['submissions']) else None
  return [point_state(root, p['name'], state['submissions'], queue) for p in state['points']]
