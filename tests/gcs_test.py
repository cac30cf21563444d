"""A run on a gs:// workdir, for real, against a local Cloud Storage emulator (gcp-storage-emulator,
a subprocess on a free port): killed in its first save, trained, killed with -9, resumed
bit-exactly, read by the tools (predict, evaluate, report); what its log points send.

paths.py (the path layer) has its tests here; they need the emulator and are skipped without it.
"""
import json
import os
import signal
import struct
import sys
import time
import urllib.request

import numpy as np

from alexnet_jax import metrics
from alexnet_jax import paths
from alexnet_jax import runs
from conftest import GCS_BUCKET as BUCKET
from conftest import finish
from conftest import FOLDER_RUN_ENV
from conftest import folder_run_command
from conftest import run_module
from conftest import run_modules
from conftest import start
from conftest import wait_until

# python -c KILLED_IN_FIRST_SAVE <alexnet_jax.main's flags>: the run SIGKILLs itself in its first
# save, once Orbax has written the step's files into checkpoints/<step> and before it commits them
# (the file list is taken right before the commit).
KILLED_IN_FIRST_SAVE = """
import os, runpy, signal
from alexnet_jax import manifest
manifest.fingerprints = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
runpy.run_module('alexnet_jax.main', run_name='__main__', alter_sys=True)
"""


def test_paths_write_read_list_append_and_move_objects(gcs_emulator):
  from alexnet_jax import workdir  # pylint: disable=g-import-not-at-top
  root = f'gs://{BUCKET}/paths_test'
  workdir.write_atomic(f'{root}/a/x.json', b'{}')
  workdir.append_line(f'{root}/log.jsonl', 'one')
  workdir.append_line(f'{root}/log.jsonl', 'two')  # GCS has no append: written again whole
  assert paths.read_bytes(f'{root}/log.jsonl') == b'one\ntwo\n'
  assert sorted(paths.listdir(root)) == ['a', 'log.jsonl'] and paths.listdir(f'{root}/none') == []
  assert paths.isdir(f'{root}/a') and paths.isfile(f'{root}/a/x.json')
  workdir.move_aside([f'{root}/a'], f'{root}/aside')
  workdir.write_atomic(f'{root}/a/x.json', b'[]')
  workdir.move_aside([f'{root}/a'], f'{root}/aside')  # a name taken there gets a '_'
  assert sorted(paths.listdir(f'{root}/aside')) == ['a', 'a_'] and not paths.exists(f'{root}/a')
  assert paths.walk_files(f'{root}/aside') == ['a/x.json', 'a_/x.json']
  assert paths.read_bytes(f'{root}/aside/a_/x.json') == b'[]'
  assert paths.absolute(root) == root


def test_paths_copy_a_local_folder_into_a_bucket(gcs_emulator, tmp_path):
  """As the profiler uploads a trace, merged with what is there."""
  (tmp_path / 'run' / 'sub').mkdir(parents=True)
  (tmp_path / 'run' / 'a.pb').write_bytes(b'trace')
  (tmp_path / 'run' / 'sub' / 'b.json.gz').write_bytes(b'perfetto')
  target = f'gs://{BUCKET}/copy_test/plugins/profile/run'
  paths.write_bytes(f'{target}/older', b'kept')
  paths.copy_folder(str(tmp_path / 'run'), target)
  assert paths.walk_files(target) == ['a.pb', 'older', 'sub/b.json.gz']
  assert paths.read_bytes(f'{target}/sub/b.json.gz') == b'perfetto'


def _at_most_every(seconds: float, check):
  """check, asked again only once `seconds` have passed (False in between): each ask of the
  emulator costs CPU the run being watched needs."""
  asked = [0.0]

  def done() -> bool:
    if time.monotonic() - asked[0] < seconds:
      return False
    asked[0] = time.monotonic()
    return check()
  return done


def _records(path):
  return [json.loads(line) for line in paths.read_bytes(path).split(b'\n') if line.strip()]


def test_gs_run_killed_in_its_first_save_then_later_resumes_bit_exactly_and_tools_read_it(
    gcs_emulator, folder_reference_run, tmp_path):
  """Every metric but the times equals a local run's; a step Orbax never committed (the first
  save, killed) and a damaged step are moved aside on GCS."""
  data, local = folder_reference_run  # the same command on a local workdir (conftest)
  remote = f'gs://{BUCKET}/run'
  command = folder_run_command(remote, data)
  env = {**gcs_emulator, **FOLDER_RUN_ENV}  # the reference's devices: its numbers, bit for bit

  log = tmp_path / 'run0.log'
  killed = [sys.executable, '-c', KILLED_IN_FIRST_SAVE, *command[3:]]  # less '-m alexnet_jax.main'
  code, text = finish(start(killed, log, env), log)
  assert code == -signal.SIGKILL, text[-3000:]
  partial = f'{remote}/checkpoints/3'  # Orbax's own files, written straight there: no commit file
  assert paths.listdir(f'{remote}/checkpoints') == ['3'] and paths.listdir(partial)
  assert not paths.exists(f'{partial}/commit_success.txt')

  log = tmp_path / 'run1.log'
  run = start(command, log, env)  # sets the partial step aside and starts afresh
  listed = lambda step: f'{remote}/checkpoints/{step}/files.json'  # once a step is committed
  wait_until(run, _at_most_every(0.25, lambda: paths.exists(listed(6))), 'checkpoint 6', log,
             timeout=240)  # from there, steps 7-12 and 2 saves on GCS: seconds to kill it
  run.send_signal(signal.SIGKILL)
  code, text = finish(run, log)
  assert code == -signal.SIGKILL
  assert f'{partial} was never committed' in text and 'Resumed from' not in text
  assert paths.listdir(f'{remote}/corrupt_checkpoints') == ['3']
  steps = sorted(int(n) for n in paths.listdir(f'{remote}/checkpoints'))
  complete = [s for s in steps if paths.exists(listed(s))]  # 9 too if the kill came late
  assert len(complete) == 2 and complete[0] >= 3, steps
  # Damage the newest: the resume sets it (and a save the kill cut short) aside and starts at
  # the one before: a copy and a delete on GCS.
  damaged = f'{remote}/checkpoints/{complete[1]}/meta/metadata'
  paths.write_bytes(damaged, b' ' * paths.size(damaged))

  log = tmp_path / 'run2.log'
  code, text = finish(start(command, log, env), log)
  assert code == 0, text[-3000:]
  assert f'Resumed from {remote}/checkpoints/{complete[0]}.' in text
  assert sorted(paths.listdir(f'{remote}/corrupt_checkpoints')) == sorted(
      ['3'] + [str(s) for s in steps if s != complete[0]])  # complete[0] >= 3: no 3 again
  assert sorted(paths.listdir(f'{remote}/checkpoints')) == ['12', '9']
  names = paths.listdir(remote)
  assert {'config.json', 'class_names.json', 'metrics.jsonl'} <= set(names)
  events = [n for n in names if n.startswith('events.out.tfevents.')]  # one per run
  assert len(events) == 3 and all(b'train/loss' in paths.read_bytes(f'{remote}/{n}')
                                  for n in events)
  want = _records(os.path.join(local, 'metrics.jsonl'))
  got = _records(f'{remote}/metrics.jsonl')
  drop = lambda r: {k: v for k, v in r.items() if k not in ('time', 'images_per_sec')}
  assert [drop(r) for r in got] == [drop(r) for r in want] and len(want) == 12 + 3

  predicted, result = run_modules(  # both only read the checkpoint
      ('alexnet_jax.tools.predict', f'--workdir={remote}', '--json', os.path.join(data, 'class1')),
      ('alexnet_jax.tools.evaluate', f'--workdir={remote}'), env=env, timeout=120)
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  predictions = [json.loads(line) for line in predicted.stdout.splitlines()]
  assert len(predictions) == 10 and all(p['predictions'][0]['name'].startswith('class')
                                        for p in predictions)
  assert result.returncode == 0, result.stderr[-3000:]
  last_eval = [r for r in want if r['split'] == 'eval'][-1]
  assert json.loads(result.stdout.splitlines()[-1]) == {
      k: last_eval[k] for k in ('loss', 'top1', 'top5', 'count')}
  assert [r['step'] for r in _records(f'{remote}/evaluations.jsonl')] == [12]
  result = run_module('alexnet_jax.tools.report', f'gs://{BUCKET}', '--json', env=env,
                      timeout=120)  # the bucket as a sweep's root: finds the run below it
  assert result.returncode == 0, result.stderr[-3000:]
  (row,) = [json.loads(line) for line in result.stdout.splitlines()]
  assert row['finished'] and row['steps'] == [12, 0.0, 1]  # (mean, std, seeds)
  assert row['final_top1'] == [last_eval['top1'], 0.0, 1]
  assert paths.read_bytes(f'gs://{BUCKET}/curves.png').startswith(b'\x89PNG')
  assert paths.exists(f'gs://{BUCKET}/report.md')


def _received_bytes(emulator) -> int:
  """The request body bytes the emulator has received since it started (tests/gcs_emulator.py)."""
  url = emulator['STORAGE_EMULATOR_HOST']
  with urllib.request.urlopen(f'{url}/_emulator/received', timeout=10) as answer:
    return json.load(answer)['bytes']


EVAL_EVERY = 30  # log points between eval rows (and pictures)


def _log_points(workdir: str, count: int) -> None:
  """What train.py's metric writer sends for `count` train points, an eval row and conv1's picture
  every EVAL_EVERY."""
  writer = metrics.Writer(workdir)
  writer.truncate_after(0)
  filters_HWC = np.random.default_rng(0).integers(0, 256, (60, 72, 3), np.uint8)
  for step in range(1, count + 1):
    writer.write(step, 'train', {'loss': 6.9 / step, 'top1': step / count, 'top5': 0.5,
                                 'learning_rate': 0.01, 'images_per_sec': 412.25})
    if step % EVAL_EVERY == 0:
      writer.write(step, 'eval', {'loss': 1.5, 'top1': 0.5, 'top5': 0.75, 'count': 10000})
      writer.image(step, 'conv1/filters', filters_HWC)
  writer.close()


def _events(data: bytes) -> list:
  """The Event protos of an events file (TFRecords: length, its CRC, the record, its CRC)."""
  from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
  events, at = [], 0
  while at < len(data):
    (length,) = struct.unpack('<Q', data[at:at + 8])
    events.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
    at += 12 + length + 4
  return events


def test_gs_log_points_send_as_many_bytes_at_the_end_of_a_run_as_at_its_start(gcs_emulator):
  """GCS has no append: a log point used to send the whole log and events file again (26 kB a
  point over 100 points, 257 kB over 1,000). Now each sends its own line and events: 10 times the
  points, 10 times the bytes (the whole log again would be 100 times)."""
  sent = {}
  for count in (30, 300):  # ~10 ms a request to the emulator, 4 requests a point
    workdir = f'gs://{BUCKET}/log_points_{count}'
    before = _received_bytes(gcs_emulator)
    _log_points(workdir, count)
    sent[count] = _received_bytes(gcs_emulator) - before
  assert sent[300] / sent[30] < 12, sent
  # The log and the events read back whole, as one object each (no helper object left).
  run = runs.read(workdir)
  assert [r['step'] for r in run.train] == list(range(1, 301))
  assert [r['step'] for r in run.eval] == list(range(EVAL_EVERY, 301, EVAL_EVERY))
  (events,) = [n for n in paths.listdir(workdir) if n != metrics.LOG]
  found = [(e.step, v.tag) for e in _events(paths.read_bytes(f'{workdir}/{events}'))
           for v in e.summary.value]
  assert [step for step, tag in found if tag == 'train/loss'] == list(range(1, 301))
  assert [step for step, tag in found if tag == 'conv1/filters'] == list(
      range(EVAL_EVERY, 301, EVAL_EVERY))
