"""Class names: a dataset's label names, ImageNet's synsets in English, saved with a run.

WORKDIR/class_names.json holds {"names": [...], "ids": [...]}: ids are the dataset's own label
names (folder names, TFDS names, ImageNet synsets), names what a person reads ('tench').
"""
import json
import os

from alexnet_jax import errors
from alexnet_jax import paths
from alexnet_jax import workdir as workdir_lib

IMAGENET_TABLE = os.path.join(os.path.dirname(__file__), 'data', 'imagenet_classes.tsv')
FILE = 'class_names.json'


def imagenet_names() -> dict:
  """{synset: English name} of the 1000 ILSVRC-2012 classes, in TFDS's label order."""
  with open(IMAGENET_TABLE) as f:
    return dict(line.rstrip('\n').split('\t') for line in f if line.strip())


def readable(ids) -> list[str]:
  """English names for ImageNet synsets; other label names as they are."""
  table = imagenet_names()
  return [table.get(i, i) for i in ids]


def numbered(count: int) -> list[str]:
  """Names for a dataset without label names (synthetic data, an imported state_dict)."""
  return [f'class {i}' for i in range(count)]


def write(workdir: str, ids) -> None:
  """Saves the class ids and their readable names beside the run (atomically)."""
  ids = [str(i) for i in ids]
  paths.makedirs(workdir)
  workdir_lib.write_atomic(os.path.join(workdir, FILE),
                           json.dumps({'names': readable(ids), 'ids': ids}, indent=0).encode())


class ClassesError(errors.Error, ValueError):
  """A run's class_names.json that cannot be used; the message names the file and the fix."""


def read(workdir: str, num_classes: int) -> tuple[list[str], list[str]]:
  """(names, ids) saved with a run; numbered names where the run saved none (older runs)."""
  path = os.path.join(workdir, FILE)
  if not paths.exists(path):
    return numbered(num_classes), numbered(num_classes)
  try:
    saved = json.loads(paths.read_bytes(path))
    names, ids = saved['names'], saved['ids']
  except (ValueError, KeyError, TypeError) as e:
    raise ClassesError(f'{path} is damaged ({type(e).__name__}); delete it (classes are then '
                       'numbered) or restore the run\'s own file.') from e
  if len(names) != num_classes:
    raise ClassesError(f'{path} names {len(saved["names"])} classes but the model has '
                     f'{num_classes}; delete it or restore the run\'s own file.')
  return names, ids
