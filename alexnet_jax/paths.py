"""One path layer for a run's files, local or on Cloud Storage (gs://): etils.epath over gcsfs, the
layer Orbax itself writes checkpoints through. Local paths keep the os calls (and their guarantees).

Two switches are set here, before epath or gcsfs first read them (an explicit value wins):
EPATH_USE_TF=false (else epath sends gs:// through tf.io.gfile, which ignores STORAGE_EMULATOR_HOST)
and GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false (else gcsfs probes each bucket's type over gRPC first).
"""
import hashlib
import os
import shutil

os.environ.setdefault('EPATH_USE_TF', 'false')
os.environ.setdefault('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')

from etils import epath  # pylint: disable=g-import-not-at-top,wrong-import-position


def is_remote(path) -> bool:
  """A gs:// (or other object store) path: no locks, no appends, no renames, no fsync."""
  return '://' in os.fspath(path)


def absolute(path: str) -> str:
  """os.path.abspath for a local path; a gs:// path as it is (abspath would mangle it)."""
  return path if is_remote(path) else os.path.abspath(path)


def _fs(path: str):
  """epath's own gcsfs instance, its listing cache emptied: tensorstore (Orbax's arrays) and other
  processes write objects behind its back."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  fs = backend.fsspec_backend.fs(path)
  fs.invalidate_cache()
  return fs


def _fresh(path: str) -> epath.Path:
  if is_remote(path):
    _fs(path)
  return epath.Path(path)


def exists(path: str) -> bool:
  return _fresh(path).exists()


def isdir(path: str) -> bool:
  return _fresh(path).is_dir()


def isfile(path: str) -> bool:
  return _fresh(path).is_file()


def listdir(path: str) -> list[str]:
  """The names in a folder; [] where there is no such folder."""
  if not is_remote(path):
    return os.listdir(path) if os.path.isdir(path) else []
  folder = _fresh(path)
  return [p.name for p in folder.iterdir()] if folder.is_dir() else []


def walk_files(path: str) -> list[str]:
  """Every file under a folder, as paths relative to it (sorted)."""
  if not is_remote(path):
    return sorted(os.path.relpath(os.path.join(folder, name), path)
                  for folder, _, names in os.walk(path) for name in names)
  root = path.rstrip('/') + '/'
  found = _fs(path).find(path)
  prefix = root.split('://', 1)[1]
  return sorted(f[len(prefix):] for f in found if f.startswith(prefix))


def stat_key(path: str) -> tuple[int, list]:
  """(size, a key that changes when the file is written again)."""
  if not is_remote(path):
    stat = os.stat(path)
    return stat.st_size, [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
  info = _fs(path).info(path)
  return int(info['size']), [int(info['size']), str(info.get('generation') or info.get('etag'))]


def size(path: str) -> int:
  return stat_key(path)[0]


def read_bytes(path: str) -> bytes:
  return _fresh(path).read_bytes()


def read_text(path: str) -> str:
  return read_bytes(path).decode()


def open_file(path: str, mode: str = 'rb'):
  return _fresh(path).open(mode)


def write_bytes(path: str, data: bytes) -> None:
  """Writes a whole file (on GCS one upload: an object is replaced whole or not at all)."""
  epath.Path(path).write_bytes(data)


class Appender:
  """Appends to one file: on a local disk a plain append; on GCS, which has no append, each call
  uploads only the bytes added, as an object of their own (the tail), and composes the file from
  itself and the tail on the server. The bytes sent are the ones added whatever the file's size, and
  a kill leaves the file as it was before or after the call."""

  def __init__(self, path: str):
    self.path = path
    folder, name = os.fspath(path).rsplit('/', 1)
    # Named after a digest, not the file: TensorBoard reads any name holding 'tfevents' as events.
    self._tail = f'{folder}/.append-{hashlib.sha1(name.encode()).hexdigest()[:16]}'
    self._exists = None  # on GCS: whether the file exists (asked once), then kept here
    self._tail_written = False

  def append(self, data: bytes) -> None:
    if not is_remote(self.path):
      with open(self.path, 'ab') as f:
        f.write(data)
      return
    if self._exists is None:
      self._exists = exists(self.path)
    if not self._exists:
      write_bytes(self.path, data)
      self._exists = True
      return
    write_bytes(self._tail, data)
    self._tail_written = True
    _fs(self.path).merge(self.path, [self.path, self._tail])  # GCS compose: no data sent again

  def close(self) -> None:
    """Removes the tail object (kept between calls: one request fewer per append)."""
    if self._tail_written:
      _fs(self._tail).rm(self._tail)
      self._tail_written = False


def makedirs(path: str) -> None:
  """A local folder and its parents; nothing on GCS, where folders are name prefixes."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
  if is_remote(path):
    _fs(path).rm(path, recursive=True)
  else:
    os.remove(path)


def move(source: str, target: str) -> None:
  """Renames a file or folder; on GCS a copy then a delete (GCS renames no folders)."""
  if not is_remote(source):
    os.replace(source, target)
    return
  fs = _fs(source)
  if fs.isdir(source):
    for name in walk_files(source):
      fs.copy(f'{source}/{name}', f'{target}/{name}')
  else:
    fs.copy(source, target)
  fs.rm(source, recursive=True)


def copy_folder(source: str, target: str) -> None:
  """Copies a local folder's files into target (local or gs://), merged with what is there."""
  if not is_remote(target):
    shutil.copytree(source, target, dirs_exist_ok=True)
    return
  for name in walk_files(source):
    with open(os.path.join(source, name), 'rb') as f:
      write_bytes(f'{target.rstrip("/")}/{name}', f.read())
