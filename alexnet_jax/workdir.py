"""The workdir: one run at a time (an flock the kernel drops when the run dies, however it dies),
and the small writes (a whole file, an appended line) whose failure names the path and the OS error;
local or gs:// (paths.py).
"""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket

import ml_collections
from absl import logging

from alexnet_jax import errors
from alexnet_jax import parallel
from alexnet_jax import paths

LOCK = 'lock'  # WORKDIR/lock: the host and pid of the run that holds it
STEP_STATE = 'state'  # WORKDIR/checkpoints/<step>/state: the saved TrainState (checkpoint.py)


def is_step_folder(path: str) -> bool:
  """A checkpoint's step folder (WORKDIR/checkpoints/<step>, holding the saved state), not a
  workdir that happens to be named by digits (runs/42)."""
  path = path.rstrip('/')
  return os.path.basename(path).isdigit() and paths.isdir(os.path.join(path, STEP_STATE))


def run_dir(path: str) -> str:
  """The run's workdir for a workdir or a step folder: the one resolver every tool uses."""
  path = paths.absolute(path.rstrip('/'))
  return os.path.dirname(os.path.dirname(path)) if is_step_folder(path) else path


def read_config(path: str) -> ml_collections.ConfigDict:
  """A run's config.json as a ConfigDict."""
  return ml_collections.ConfigDict(json.loads(paths.read_bytes(path)))


class InUseError(errors.Error, ValueError):
  """Another live run holds the workdir."""


class WriteError(errors.Error, OSError):
  """A write to the workdir failed: a full disk, a read-only or vanished workdir."""

  def __str__(self):
    return (f'could not write {self.filename}: {self.strerror} '
            f'({errno.errorcode.get(self.errno, self.errno)}). The checkpoints saved before are '
            'intact: free space or fix the workdir, then run the same command to resume.')


def as_write_error(error: BaseException, path: str):
  """The OSError in error's chain as a WriteError (naming path if it names no file), or None."""
  while error is not None and not isinstance(error, OSError):
    error = error.__cause__ or error.__context__
  if error is None:
    return None
  return WriteError(error.errno or errno.EIO, error.strerror or str(error), error.filename or path)


@contextlib.contextmanager
def writing(path: str):
  """Raises an OSError met in the body (or behind another error: Orbax wraps them) as a WriteError."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    if (error := as_write_error(e, path)) is None:
      raise
    raise error from e


def write_atomic(path: str, data: bytes) -> None:
  """Writes path whole or not at all: a temporary file, fsync, rename (on GCS: one upload)."""
  if paths.is_remote(path):
    with writing(path):
      paths.write_bytes(path, data)
    return
  try:
    with open(path + '.tmp', 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(path + '.tmp', path)
  except OSError as e:
    with contextlib.suppress(OSError):
      os.remove(path + '.tmp')
    raise as_write_error(e, path) from e


def append_line(path: str, line: str) -> None:
  """Appends line in a single unbuffered write: a kill leaves at most this line torn.

  GCS has no append: there the file is read and written again whole (a small log), so a kill
  leaves it as it was before or after the line.
  """
  data = (line + '\n').encode()
  if paths.is_remote(path):
    with writing(path):
      old = paths.read_bytes(path) if paths.exists(path) else b''
      paths.write_bytes(path, old + (b'\n' if old and not old.endswith(b'\n') else b'') + data)
    return
  try:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      if os.write(fd, data) != len(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    finally:
      os.close(fd)
  except OSError as e:
    raise as_write_error(e, path) from e


def sync(path: str) -> None:
  """Flushes path to the disk (it survives a machine crash, not only a killed process)."""
  if paths.is_remote(path):
    return  # an object is stored once its upload returns
  try:
    fd = os.open(path, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
  except FileNotFoundError:
    pass
  except OSError as e:
    raise as_write_error(e, path) from e


def move_aside(sources, folder: str) -> None:
  """Moves each path into folder (a name taken there gets a '_' appended); logs each move."""
  paths.makedirs(folder)
  for path in sources:
    target = os.path.join(folder, os.path.basename(path))
    while paths.exists(target):
      target += '_'
    paths.move(path, target)
    logging.warning('Moved checkpoint %s to %s.', path, target)


def _try_lock(path: str):
  """A descriptor holding an exclusive flock on path; None while another process holds it."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        return fd
    except BlockingIOError:
      os.close(fd)
      return None
    except FileNotFoundError:
      pass  # its holder removed the file between our open and our flock: open it again
    except OSError:
      os.close(fd)
      raise
    os.close(fd)


def _acquire(workdir: str, path: str):
  """(descriptor or None, ok): ok is False while another run holds the workdir."""
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = _try_lock(path)
    if fd is not None:
      os.ftruncate(fd, 0)
      os.write(fd, json.dumps({'host': socket.gethostname(), 'pid': os.getpid(), 'started':
                               datetime.datetime.now().isoformat(timespec='seconds')}).encode())
    return fd, fd is not None
  except OSError as e:
    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
      raise as_write_error(e, path) from e
    logging.warning('Cannot lock %s (%s): make sure that no other run uses this workdir.', path, e)
    return None, True


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      who = json.load(f)
    return f'pid {who["pid"]} on host {who["host"]} (started {who["started"]})'
  except (OSError, ValueError, KeyError):
    return 'a run that is starting (pid and host not yet written)'


@contextlib.contextmanager
def lock(workdir: str, *, primary: bool = True):
  """Holds WORKDIR/lock while the body runs (primary: process 0; the others follow its verdict).

  Raises InUseError, having written nothing, while another live run holds it.
  """
  if '://' in workdir:
    logging.warning('%s is not locked (no locks on object stores): make sure that no other run '
                    'uses it; two runs would write the same checkpoints and metrics.', workdir)
    yield
    return
  path = os.path.join(workdir, LOCK)
  fd, free = _acquire(workdir, path) if primary else (None, True)
  if not parallel.everywhere(free):
    raise InUseError(f'workdir {workdir} is in use by another run: {_holder(path)}. Wait for it to '
                     'end or stop it, or use another --workdir.')
  try:
    yield
  finally:
    if fd is not None:
      with contextlib.suppress(OSError):  # a vanished workdir has no lock file left
        os.remove(path)
      os.close(fd)  # releases the flock; the kernel does the same for a killed run
