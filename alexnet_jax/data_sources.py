"""Index-addressable example sources: a prepared TFDS dataset (array_record) or a folder of images.

The one module that touches TFDS builders. A Source maps int64 example indices to encoded image
bytes and labels inside a tf.data graph, so any order of examples can be read without a scan.
downsample.py builds on these: with data.downsample, downsample.open_source reads a source through
the paper's down-sampled copy.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable

import numpy as np
from absl import logging

from alexnet_jax import errors
from alexnet_jax import paths as path_layer  # not `paths`: a common local name here
from alexnet_jax import preprocess
from alexnet_jax import tf_import

tf = tf_import.lazy('tensorflow')  # imported at the first use (tf_import.py)
tfds = tf_import.lazy('tensorflow_datasets')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')
UNREAD_EXTENSIONS = ('.tif', '.tiff', '.heic', '.heif')  # named when a walk leaves them out
SPLIT_FOLDERS = {'train': ('train',), 'validation': ('val', 'validation'), 'test': ('test',)}
CORRUPT_FILE = 'alexnet_jax_corrupt.json'  # written by tools/prepare beside a TFDS dataset
IMAGENET_FILES = {'train': 'ILSVRC2012_img_train.tar', 'validation': 'ILSVRC2012_img_val.tar'}


class DataError(errors.Error, ValueError):
  """Bad input data; the message is one line naming the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class Source:
  num_examples: int
  num_classes: int
  # int64 [n] indices -> (payload string [n], label int32 [n]), in graph; a payload is the
  # encoded image itself (TFDS, the down-sampled copy) or the path of its file (folders).
  records: Callable
  image_bytes: Callable  # payload string [] -> encoded image bytes string [], in graph
  describe: Callable[[int], str]  # index -> a name for messages (a file, or dataset[index])
  fingerprint: str = ''  # changes when the examples do: keys the down-sampled copy
  class_ids: tuple = ()  # the dataset's name of each label (folder name, TFDS name, synset)


def open_source(data_config, split: str) -> Source:
  """The examples of `split` of data.name, with corrupt ones skipped or reported per data.on_corrupt
  (the originals: data.downsample is downsample.open_source's)."""
  if data_config.name.startswith('folder:'):
    return folder_source(data_config.name[len('folder:'):], split, data_config)
  return tfds_source(data_config, split)


def resize_ratio(data_config) -> float:
  """data.resize_ratio, checked; runs saved before the key existed used the paper's 256/224."""
  ratio = data_config.get('resize_ratio', preprocess.RESIZE_RATIO)
  if not 1.0 <= ratio <= 4.0:
    raise DataError(f'data.resize_ratio={ratio} is out of range: the shorter side before the crop '
                    'over the crop size, from 1 (the whole image) to 4; the paper uses 256/224.')
  return ratio


def _parse_split(split: str):
  """'train' -> ('train', 0, 1); 'train[:90%]' -> ('train', 0, 0.9); 'train[-10%:]' -> (.., 0.9, 1).

  Percent slices only, negative ones counted from the end as TFDS counts them.
  """
  match = re.fullmatch(r'(\w+)(?:\[(-?\d+%)?:(-?\d+%)?\])?', split)
  percents = [int(v[:-1]) for v in match.groups()[1:] if v] if match else []
  if not match or any(abs(p) > 100 for p in percents):
    raise DataError(f"Split {split!r} is not understood; use e.g. 'train', 'val', 'train[:90%]' "
                    "or 'train[-10%:]' (percent slices, -100% to 100%).")
  name, lo, hi = match.groups()
  fraction = lambda v, default: default if not v else (int(v[:-1]) + 100 * v.startswith('-')) / 100
  lo, hi = fraction(lo, 0.0), fraction(hi, 1.0)
  if lo >= hi:
    raise DataError(f'Split {split!r} is empty: its slice ends before it starts.')
  return name, lo, hi


def _list_images(class_root: str, split_root: str):
  classes = sorted(d for d in os.listdir(class_root) if os.path.isdir(os.path.join(class_root, d)))
  if not classes:
    raise DataError(f'{class_root} holds no class sub-folders; put each class\'s images in '
                    f'{class_root}/<class name>/.')
  files, left_out = [], 0
  for label, name in enumerate(classes):
    folder = os.path.join(split_root, name)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    files += [(os.path.join(folder, f), label) for f in names if f.lower().endswith(IMAGE_EXTENSIONS)]
    left_out += sum(f.lower().endswith(UNREAD_EXTENSIONS) for f in names)
  if left_out:
    logging.warning('%d TIFF or HEIC files under %s are left out: TensorFlow does not decode '
                    'them. Convert them to PNG or JPEG to use them.', left_out, split_root)
  return classes, files


def _folder_split(root: str, split: str):
  """(classes, [(path, label)]) of a split: train/ and val/ sub-folders, or a slice of the whole."""
  if not os.path.isdir(root):
    raise DataError(f'data.name=folder:{root}: no such folder; give a folder of class sub-folders.')
  name, lo, hi = _parse_split(split)
  train_root = os.path.join(root, 'train')
  if os.path.isdir(train_root):
    found = [os.path.join(root, f) for f in SPLIT_FOLDERS.get(name, (name,))
             if os.path.isdir(os.path.join(root, f))]
    if not found:
      raise DataError(f"{root} has no {SPLIT_FOLDERS.get(name, (name,))[0]}/ folder for split "
                      f"{split!r}: add one, or hold out a fraction with data.train_split='train[:90%]' "
                      f"and data.eval_split='train[90%:]'.")
    classes, files = _list_images(train_root, found[0])
  elif name == 'train':
    classes, files = _list_images(root, root)
  else:
    raise DataError(f"{root} has no train/ and val/ folders, so split {split!r} does not exist: use "
                    f"data.train_split='train[:90%]' and data.eval_split='train[90%:]'.")
  if (lo, hi) != (0.0, 1.0):  # slice a fixed shuffle, so that a held-out slice spans all classes
    order = np.random.default_rng(0).permutation(len(files))
    files = [files[i] for i in order[round(lo * len(files)):round(hi * len(files))]]
  if not files:
    raise DataError(f'Split {split!r} of {root} holds no images ({", ".join(IMAGE_EXTENSIONS)}).')
  return classes, files


def find_corrupt(source: Source) -> list[int]:
  """Indices of the examples whose image TF cannot decode (each image decoded once, in parallel)."""
  @tf.autograph.experimental.do_not_convert
  def decode(index, payload):
    image = tf.io.decode_image(source.image_bytes(payload), channels=3, expand_animations=False)
    return index, tf.shape(image)[0]
  good = tf.data.Dataset.range(source.num_examples).batch(256)
  good = good.map(tf.autograph.experimental.do_not_convert(
      lambda idx: (idx, source.records(idx)[0]))).unbatch()
  good = good.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
  ok = np.zeros(source.num_examples, bool)
  for index, _ in good.as_numpy_iterator():
    ok[index] = True
  return np.flatnonzero(~ok).tolist()


def _without_corrupt(source: Source, corrupt: list[int], on_corrupt: str, where: str) -> Source:
  """source without the corrupt examples (on_corrupt='skip'), or a DataError naming the first."""
  if not corrupt:
    return source
  if on_corrupt != 'skip':
    raise DataError(f'{len(corrupt)} corrupt image(s) in {where}, first {source.describe(corrupt[0])}: '
                    'delete or replace it, or set --config.data.on_corrupt=skip.')
  logging.warning('Skipping %d corrupt image(s) in %s, first %s.', len(corrupt), where,
                  source.describe(corrupt[0]))
  keep = tf.constant(np.setdiff1d(np.arange(source.num_examples), corrupt), tf.int64)
  return dataclasses.replace(source, num_examples=int(keep.shape[0]),
                             records=lambda idx: source.records(tf.gather(keep, idx)),
                             describe=lambda i: source.describe(int(keep[i])),
                             fingerprint=f'{source.fingerprint} without {corrupt}')


def folder_source(root: str, split: str, data_config) -> Source:
  """Images in class sub-folders (JPEG, PNG, BMP, GIF, WebP mixed); checked for corrupt files once, cached."""
  classes, files = _folder_split(root, split)
  paths = tf.constant([p for p, _ in files])
  labels = tf.constant([l for _, l in files], tf.int32)
  source = Source(num_examples=len(files), num_classes=len(classes),
                  records=lambda idx: (tf.gather(paths, idx), tf.gather(labels, idx)),
                  image_bytes=tf.io.read_file, describe=lambda i: files[i][0],
                  class_ids=tuple(classes))
  fingerprint = _fingerprint([p for p, _ in files])
  source = dataclasses.replace(source, fingerprint=f'folder {split} {fingerprint}')
  cache = os.path.join(data_config.data_dir or os.path.expanduser('~/tensorflow_datasets'),
                       'alexnet_jax_folders', hashlib.sha1(fingerprint.encode()).hexdigest() + '.json')
  if path_layer.exists(cache):  # data_dir may be gs://
    corrupt = json.loads(path_layer.read_bytes(cache))
  else:
    logging.info('Checking %d images of %s split %s for corrupt files.', len(files), root, split)
    corrupt = find_corrupt(source)
    path_layer.makedirs(os.path.dirname(cache))
    path_layer.write_bytes(cache, json.dumps(corrupt).encode())
  return _without_corrupt(source, corrupt, data_config.on_corrupt, f'folder:{root} split {split}')


def _fingerprint(paths: list[str]) -> str:
  """Paths, sizes and mtimes of files (JSON): changes when any of them is written again."""
  return json.dumps([(p, os.path.getsize(p), os.path.getmtime(p)) for p in paths])


def tfds_builder(name: str, data_dir: str = ''):
  try:
    return tfds.builder(name, data_dir=data_dir or None, file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f"Unknown data.name={name!r}: use a TFDS dataset name, 'folder:/path' or "
                    "'synthetic'.") from None


def missing_manual_files(name: str, manual_dir: str) -> list[str]:
  """The ImageNet archives absent from manual_dir, as 'file (split)'."""
  if name != 'imagenet2012':
    return []
  return [f'{f} ({s})' for s, f in IMAGENET_FILES.items()
          if not manual_dir or not os.path.exists(os.path.join(manual_dir, f))]


def tfds_source(data_config, split: str) -> Source:
  """A split of a TFDS dataset prepared with tools/prepare (array_record, random access)."""
  builder = tfds_builder(data_config.name, data_config.data_dir)
  if not builder.is_prepared():
    missing = missing_manual_files(data_config.name, data_config.manual_dir)
    hint = (f'; first put {", ".join(missing)} in manual_dir {data_config.manual_dir or "<unset>"}'
            if missing else '')
    raise DataError(f'{data_config.name} is not prepared in {builder.data_dir}: run python -m '
                    f'alexnet_jax.tools.prepare --dataset={data_config.name} --manual_dir=... '
                    f'--data_dir=...{hint}.')
  image_key, label_key = builder.info.supervised_keys
  try:
    prepared = builder.as_data_source(split, decoders={image_key: tfds.decode.SkipDecoding()})
  except NotImplementedError:
    raise DataError(f'{builder.data_dir} is not in array_record format (random access): prepare it '
                    'again with alexnet_jax.tools.prepare into another data_dir.') from None
  except (KeyError, ValueError) as e:
    raise DataError(f'Split {split!r} of {data_config.name}: {e}'.splitlines()[0]) from None

  raw = prepared.data_source  # serialized tf.Examples: parsed in the graph, not per example in Python
  spec = {image_key: tf.io.FixedLenFeature([], tf.string),
          label_key: tf.io.FixedLenFeature([], tf.int64)}

  def records(indices):
    serialized = tf.numpy_function(lambda idx: np.array(raw.__getitems__(idx.tolist()), object),
                                   [indices], tf.string, stateful=False)
    example = tf.io.parse_example(tf.ensure_shape(serialized, indices.shape), spec)
    return example[image_key], tf.cast(example[label_key], tf.int32)
  labels = builder.info.features[label_key]
  source = Source(num_examples=len(prepared), num_classes=labels.num_classes,
                  class_ids=tuple(labels.names),
                  records=records, image_bytes=lambda payload: payload,
                  describe=lambda i: f'{data_config.name} {split}[{i}]',
                  fingerprint=f'tfds {split} ' + _fingerprint(sorted(
                      f.path for f in os.scandir(builder.data_dir) if f.is_file())))
  corrupt_file = os.path.join(builder.data_dir, CORRUPT_FILE)
  corrupt = {}
  if os.path.exists(corrupt_file):
    with open(corrupt_file) as f:
      corrupt = json.load(f)
  return _without_corrupt(source, corrupt.get(split, []), data_config.on_corrupt,
                  f'{data_config.name} {split}')


def prepare_tfds(name: str, data_dir: str, manual_dir: str) -> None:
  """Builds a TFDS dataset as array_record (TFDS shows its own progress bars)."""
  builder = tfds_builder(name, data_dir)
  missing = missing_manual_files(name, manual_dir)
  if missing:
    raise DataError(f'Missing {" and ".join(missing)}: put them in manual_dir '
                    f'{manual_dir or "(pass --manual_dir)"}, as downloaded from image-net.org.')
  config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  builder.download_and_prepare(download_config=config, file_format='array_record')


def record_corrupt(data_config, splits: list[str]) -> dict:
  """Finds corrupt images of the given splits of a prepared TFDS dataset; writes them beside it."""
  builder = tfds_builder(data_config.name, data_config.data_dir)
  path = os.path.join(builder.data_dir, CORRUPT_FILE)
  if os.path.exists(path):
    os.remove(path)
  corrupt = {split: find_corrupt(tfds_source(data_config, split)) for split in splits}
  with open(path, 'w') as f:
    json.dump(corrupt, f)
  return corrupt
