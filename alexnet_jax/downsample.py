"""The paper's down-sampled copy of a source (section 2): shorter side to 256, central 256x256 kept.

Written once as side x side JPEGs (images.bin, offsets.npy, labels.npy) and read by index like any
Source; see downsampled_source. open_source opens a split as data_config reads it.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import shutil
import time

import numpy as np
from absl import logging

from alexnet_jax import data_sources
from alexnet_jax.data_sources import DataError
from alexnet_jax.data_sources import Source
from alexnet_jax import preprocess
from alexnet_jax import tf_import

tf = tf_import.lazy('tensorflow')  # imported at the first use (tf_import.py)

DOWNSAMPLED_FOLDER = 'alexnet_jax_downsampled'  # under data_dir (or TFDS's default)
DOWNSAMPLED_QUALITY = 95  # JPEG quality of the down-sampled copy
DOWNSAMPLED_VERSION = 2  # of _write_downsampled: part of the copy's key (2: JPEGs upright per EXIF)


def open_source(data_config, split: str) -> Source:
  """data_sources.open_source, read through the down-sampled copy when data.downsample is on."""
  source = data_sources.open_source(data_config, split)
  if not data_config.get('downsample'):
    return source
  side = preprocess.resize_side(data_config.image_size, data_sources.resize_ratio(data_config))
  return downsampled_source(source, side=side, data_dir=data_config.data_dir)


def _write_downsampled(source: Source, side: int, folder: str) -> None:
  """Writes every example as a side x side JPEG into folder (images.bin, offsets.npy, labels.npy)."""
  @tf.autograph.experimental.do_not_convert
  def square(payload, label):
    image = preprocess.decode_resized(source.image_bytes(payload), preprocess.square_window, side)
    return tf.io.encode_jpeg(image, quality=DOWNSAMPLED_QUALITY), label
  dataset = tf.data.Dataset.range(source.num_examples).batch(256)
  dataset = dataset.map(tf.autograph.experimental.do_not_convert(source.records)).unbatch()
  dataset = dataset.map(square, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  offsets, labels, start = [0], [], time.time()
  with open(os.path.join(folder, 'images.bin'), 'wb') as f:
    try:
      for i, (jpeg, label) in enumerate(dataset.prefetch(64).as_numpy_iterator()):
        f.write(jpeg)
        offsets.append(offsets[-1] + len(jpeg))
        labels.append(label)
        if (i + 1) % 10000 == 0:
          logging.info('Down-sampled %d / %d images (%.0f/s).', i + 1, source.num_examples,
                       (i + 1) / (time.time() - start))
    except tf.errors.OpError as e:
      raise DataError(f'Image {source.describe(len(labels))} could not be down-sampled '
                      f'({str(e).splitlines()[0][:120]}): list the corrupt images with python -m '
                      'alexnet_jax.tools.prepare (--verify) and set data.on_corrupt=skip.') from None
  np.save(os.path.join(folder, 'offsets.npy'), np.array(offsets, np.int64))
  np.save(os.path.join(folder, 'labels.npy'), np.array(labels, np.int32))


def _write_downsampled_once(source: Source, side: int, root: str, folder: str, key: str) -> None:
  """Writes the copy into folder unless another local process does: that one writes, this waits."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f'.{key}.lock'), 'w') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.info('Waiting for another process to write the down-sampled copy %s.', folder)
      fcntl.flock(lock, fcntl.LOCK_EX)
    if os.path.isdir(folder):  # written while this process waited
      return
    logging.info('Writing a %dx%d down-sampled copy of %d images to %s (once).', side, side,
                 source.num_examples, folder)
    partial = folder + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
      _write_downsampled(source, side, partial)
    except BaseException:
      shutil.rmtree(partial, ignore_errors=True)
      raise
    os.rename(partial, folder)


def copy_root(data_dir: str) -> str:
  """The local folder of the down-sampled copies: under data_dir, or TFDS's default for gs://."""
  local = data_dir if data_dir and '://' not in data_dir else '~/tensorflow_datasets'
  return os.path.join(os.path.expanduser(local), DOWNSAMPLED_FOLDER)


def downsampled_source(source: Source, *, side: int, data_dir: str = '') -> Source:
  """`source` read from a copy of side x side JPEGs: the central square, shorter side resized.

  The paper trained on such a copy at 256 (random 224 crops of it): per epoch a 256x256 JPEG is
  decoded instead of the full image, about a third of the bytes. The copy is written once (its
  rate: README 'Input pipeline speed'), keyed by the source's fingerprint (the split as
  named, e.g. 'train[:90%]', and the dataset's files) and `side`, under
  <data_dir>/alexnet_jax_downsampled/ (~/tensorflow_datasets/ for a gs:// data_dir: the copy is
  read by memory map, from a local disk); it is moved into place only when complete. Copies of
  datasets that changed since are not deleted: remove old folders there by hand.
  """
  key = hashlib.sha1(f'{source.fingerprint} {source.num_examples} {side} {DOWNSAMPLED_QUALITY} '
                     f'{DOWNSAMPLED_VERSION}'.encode()).hexdigest()[:16]
  root = copy_root(data_dir)
  folder = os.path.join(root, f'{side}px_{key}')
  if not os.path.isdir(folder):  # a finished copy is only read: a read-only data_dir will do
    try:
      _write_downsampled_once(source, side, root, folder, key)
    except OSError as e:
      raise DataError(f'Cannot write the down-sampled copy under {root} ({e.strerror}): make '
                      'data.data_dir writable, or prepare the copy there with python -m '
                      'alexnet_jax.tools.prepare --downsample_for=<image_size>.') from None
  try:
    offsets = np.load(os.path.join(folder, 'offsets.npy'))
    labels = np.load(os.path.join(folder, 'labels.npy'))
    images = np.memmap(os.path.join(folder, 'images.bin'), np.uint8, mode='r')
    intact = (len(offsets) == len(labels) + 1 == source.num_examples + 1 and
              offsets[-1] == images.size)
  except (OSError, ValueError):
    intact = False
  if not intact:
    raise DataError(f'The down-sampled copy {folder} is damaged or does not match its source '
                    f'({source.num_examples} images): delete that folder to write it again.')
  labels = tf.constant(labels)

  def read(indices):
    return np.array([images[offsets[i]:offsets[i + 1]].tobytes() for i in indices], object)

  def records(indices):
    jpegs = tf.numpy_function(read, [indices], tf.string, stateful=False)
    return tf.ensure_shape(jpegs, indices.shape), tf.gather(labels, indices)
  return dataclasses.replace(source, records=records, image_bytes=lambda payload: payload,
                             fingerprint=f'{source.fingerprint} downsampled {side}')
