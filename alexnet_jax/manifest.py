"""A checkpoint step's list of files (size and SHA-256), written once Orbax has committed the step
and checked before anything reads it: damage to any file is found and named, whatever the file.
"""
import hashlib
import json
import os

from alexnet_jax import paths
from alexnet_jax import workdir

NAME = 'files.json'  # CHECKPOINTS/<step>/files.json


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with paths.open_file(path) as f:
    while chunk := f.read(1 << 22):
      digest.update(chunk)
  return digest.hexdigest()


def _files(step_dir: str) -> list[str]:
  """Every file under step_dir but the list, as paths relative to it."""
  return [f for f in paths.walk_files(step_dir) if f != NAME]


def fingerprints(step_dir: str, known=None) -> dict:
  """{file: [size, sha256, stat key]}; a file whose stat key is in `known` is not read again."""
  found = {}
  for name in _files(step_dir):
    size, key = paths.stat_key(os.path.join(step_dir, name))
    old = (known or {}).get(name)
    found[name] = old if old and old[2] == key else [
        size, _sha256(os.path.join(step_dir, name)), key]
  return found


def write(step_dir: str, known=None) -> None:
  """Lists the size and SHA-256 of every file of a committed step in step_dir/files.json.

  known: fingerprints() taken before the commit's rename, so that only the files the commit
  wrote are read here, and a kill finds a step without its list only in a millisecond's window.
  """
  files = {f: v[:2] for f, v in fingerprints(step_dir, known).items()}
  workdir.write_atomic(os.path.join(step_dir, NAME), json.dumps({'files': files}).encode())


def exists(step_dir: str) -> bool:
  return paths.exists(os.path.join(step_dir, NAME))


def _listed(step_dir: str) -> dict:
  files = json.loads(paths.read_bytes(os.path.join(step_dir, NAME)))['files']
  if not all(isinstance(v, list) and len(v) == 2 for v in files.values()):
    raise ValueError('not a list of [size, sha256]')
  return files


def _listed_when_saved(step_dir: str) -> bool:
  """False for a step saved before file lists: its meta item has no 'file_list' (checkpoint.py)."""
  try:
    return 'file_list' in json.loads(paths.read_bytes(os.path.join(step_dir, 'meta', 'metadata')))
  except (OSError, ValueError, TypeError):
    return True


def damage(step_dir: str):
  """None if every listed file is as it was written, else what is wrong, in a few words.

  A step saved before file lists passes (a restore still checks its arrays' checksums).
  """
  if not exists(step_dir):
    if not _listed_when_saved(step_dir):
      return None
    return f'{NAME} is missing (its save was interrupted, or the file was deleted)'
  try:
    listed = _listed(step_dir)
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    return f'{NAME} is damaged ({type(e).__name__}: {str(e)[:80]})'
  for name, (size, sha256) in listed.items():
    path = os.path.join(step_dir, name)
    if not paths.isfile(path):
      return f'{name} is missing'
    if (found := paths.size(path)) != size:
      return f'{name} is {"empty" if found == 0 else f"{found} bytes"}, {size} bytes when saved'
    if _sha256(path) != sha256:
      return f'{name} has other bytes than when saved'
  return None
