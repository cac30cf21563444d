"""Input data: TFDS / image folder / synthetic sources -> this process's shard -> numpy batches.

Contract used by train.py (all sources):
  get_dataset_info(data_config, *, num_classes) -> DatasetInfo
  create_train_iterator(data_config, *, seed, num_classes, start_step=0) -> iterator of
      {'image': uint8 [b, S, S, 3], 'label': int32 [b], 'lighting': float32 [b, 3]},
      b = batch_size // process_count; images are decoded, cropped, resized and flipped, not
      normalised: model.standardize adds 'lighting' (the PCA offset, [0, 1] scale) and normalises
      on the device. The batch for step s is a function of (seed, s) only, so a run resumed at
      start_step sees exactly the batches of the run that was never interrupted.
  create_eval_iterator(data_config, *, seed, num_classes) -> iterable of
      {'image': uint8 [b, S, S, 3] or [b, crops, S, S, 3], 'label': int32 [b], 'mask': bool [b]};
      every process yields the same number of batches; padding rows have mask False.
num_classes is model.num_classes: the synthetic source draws that many classes (uint8 class
templates plus noise; 'lighting' all zeros); the real sources report their own count and train.py
checks that the two agree.

Real sources are index-addressable: global position t of the example stream is example
index_shuffle(t mod N, seed, epoch t div N), step s holds positions s*B .. s*B+B-1 and process p its
slice p*b .. p*b+b-1 of them; augmentation is seeded by (seed, t). So a batch depends on (seed, step)
only, the global batch is the same for any process count, and resuming costs nothing.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import jax
import numpy as np

from alexnet_jax.data_sources import DataError
from alexnet_jax import data_sources
from alexnet_jax import downsample
from alexnet_jax import fake_imagenet
from alexnet_jax import preprocess
from alexnet_jax import tf_import

tf = tf_import.lazy('tensorflow')  # imported at the first use (tf_import.py)

SYNTHETIC_POOL_BATCHES = 4  # distinct global batches the synthetic source cycles through
SYNTHETIC_EVAL_EXAMPLES = 256
FAKE_IMAGENET_CACHE = '~/.cache/alexnet_jax'


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  num_classes: int
  num_train_examples: int
  num_eval_examples: int
  class_ids: tuple = ()  # the dataset's label names, one per class (see classes.py)


def _local_batch_size(batch_size: int) -> int:
  count = jax.process_count()
  if batch_size % count:
    raise DataError(f'data.batch_size={batch_size} is not divisible by the {count} processes; '
                    f'set --config.data.batch_size to a multiple of {count}.')
  return batch_size // count


def _synthetic_examples(data_config, seed: int, first: int, count: int, num_classes: int):
  """Examples first..first+count-1 of a learnable synthetic set: uint8 class template plus noise.

  Each example is drawn from (seed, its global index) alone, so any process count sees the same set.
  """
  size = data_config.image_size
  # Class templates are drawn at 8x8 and upsampled: 1000 classes cost 1.5 MB, not 1.2 GB.
  coarse = np.random.default_rng([seed, 0]).normal(size=(num_classes, 8, 8, 3))
  rngs = [np.random.default_rng([seed, 1, index]) for index in range(first, first + count)]
  labels = np.array([rng.integers(0, num_classes) for rng in rngs])
  reps = -(-size // 8)
  templates = coarse[labels].repeat(reps, axis=1).repeat(reps, axis=2)[:, :size, :size]
  noise = np.stack([rng.normal(size=(size, size, 3)) for rng in rngs])
  # Pixels as a decoded photo has them; 40 levels per unit clip 2% of them at 0 and 255.
  images = np.clip(np.rint(128 + 40 * (templates + noise)), 0, 255).astype(np.uint8)
  return images, labels.astype(np.int32)


def _synthetic_train(data_config, seed, num_classes, start_step):
  local = _local_batch_size(data_config.batch_size)
  offset = jax.process_index() * local
  pool = [_synthetic_examples(data_config, seed, k * data_config.batch_size + offset, local,
                              num_classes)
          for k in range(SYNTHETIC_POOL_BATCHES)]
  step = start_step
  while True:
    images, labels = pool[step % SYNTHETIC_POOL_BATCHES]
    yield {'image': images, 'label': labels, 'lighting': np.zeros((local, 3), np.float32)}
    step += 1


def _synthetic_eval(data_config, seed, num_classes):
  local = _local_batch_size(data_config.batch_size)
  total = SYNTHETIC_EVAL_EXAMPLES
  # Held-out examples: indices past the training pool, same class templates.
  first_eval = SYNTHETIC_POOL_BATCHES * data_config.batch_size
  for start in range(0, total, data_config.batch_size):
    lo = start + jax.process_index() * local
    valid = max(0, min(local, total - lo))
    images, labels = _synthetic_examples(data_config, seed, first_eval + lo, local, num_classes)
    yield {'image': images, 'label': labels, 'mask': np.arange(local) < valid}


def with_fake_imagenet(data_config):
  """With data.fake_imagenet.classes > 0 and name imagenet2012: generated and prepared on first use.

  Empty manual_dir / data_dir default to FAKE_IMAGENET_CACHE/<name from the parameters>/{manual,tfds}.
  Returns data_config, or a copy with those folders filled in.
  """
  fake = data_config.get('fake_imagenet')
  if data_config.name != 'imagenet2012' or not fake or fake.classes <= 0:
    return data_config
  root = os.path.join(os.path.expanduser(FAKE_IMAGENET_CACHE), f'fake_imagenet_{fake.classes}c_'
                      f'{fake.train_per_class}t_{fake.val_per_class}v_{fake.image_px}px_'
                      f'v{fake_imagenet.VERSION}')
  data_config = data_config.copy_and_resolve_references()
  data_config.manual_dir = data_config.manual_dir or os.path.join(root, 'manual')
  data_config.data_dir = data_config.data_dir or os.path.join(root, 'tfds')
  fake_imagenet.ensure_prepared(data_config.manual_dir, data_config.data_dir,
                                num_classes=fake.classes, train_per_class=fake.train_per_class,
                                val_per_class=fake.val_per_class, image_px=fake.image_px)
  return data_config


def get_dataset_info(data_config, *, num_classes: int) -> DatasetInfo:
  data_sources.resize_ratio(data_config)  # checked before a run touches its workdir
  data_config = with_fake_imagenet(data_config)
  if data_config.name == 'synthetic':
    return DatasetInfo(num_classes=num_classes,
                       num_train_examples=SYNTHETIC_POOL_BATCHES * data_config.batch_size,
                       num_eval_examples=SYNTHETIC_EVAL_EXAMPLES,
                       class_ids=tuple(f'class {i}' for i in range(num_classes)))
  train = downsample.open_source(data_config, data_config.train_split)
  evaluation = downsample.open_source(data_config, data_config.eval_split)
  return DatasetInfo(num_classes=train.num_classes, num_train_examples=train.num_examples,
                     num_eval_examples=evaluation.num_examples, class_ids=train.class_ids)


def _options() -> tf.data.Options:
  try:
    tf.config.set_visible_devices([], 'GPU')  # the accelerators belong to JAX
  except RuntimeError:  # TF already initialised its devices: done by an earlier call
    pass
  options = tf.data.Options()
  options.deterministic = True
  # Parallelism across examples, one thread per op: no intra-op fan-out for small images.
  options.threading.max_intra_op_parallelism = 1
  options.experimental_optimization.map_parallelization = True
  return options


def _process_positions(first, *, local: int):
  """This process's slice of the global positions first .. first + batch_size - 1."""
  return first + jax.process_index() * local + tf.range(local, dtype=tf.int64)


def shuffled_index(positions, *, seed: int, num_examples: int):
  """Example index of stream positions: a fresh seeded permutation of all examples each epoch."""
  epochs = positions // num_examples
  seeds = tf.stack([tf.fill(tf.shape(epochs), tf.cast(seed, tf.int64)), epochs,
                    tf.zeros_like(epochs)], axis=1)
  # The raw op: tf.random.experimental.index_shuffle mis-pads [n, 2] seeds in TF 2.21.
  return tf.raw_ops.RandomIndexShuffle(index=positions % num_examples, seed=seeds,
                                       max_index=tf.constant(num_examples - 1, tf.int64), rounds=4)


def train_dataset(data_config, source, *, seed: int, start_step: int = 0) -> tf.data.Dataset:
  """Batches of this process from start_step on, forever."""
  global_batch = data_config.batch_size
  local = _local_batch_size(global_batch)

  @tf.autograph.experimental.do_not_convert  # plain tf ops: no AutoGraph needed
  def read(step):
    positions = _process_positions(step * global_batch, local=local)
    payload, labels = source.records(shuffled_index(positions, seed=seed,
                                                  num_examples=source.num_examples))
    return positions, payload, labels

  @tf.autograph.experimental.do_not_convert
  def augment(position, payload, label):
    image, lighting = preprocess.train_image(
        source.image_bytes(payload), tf.stack([tf.cast(seed, tf.int64), position]),
        size=data_config.image_size, crop=data_config.crop, flip=data_config.flip,
        pca_lighting_std=data_config.pca_lighting_std,
        resize_ratio=data_sources.resize_ratio(data_config))
    return {'image': image, 'label': label, 'lighting': lighting}
  dataset = tf.data.Dataset.counter(start_step, dtype=tf.int64)
  dataset = dataset.map(read, num_parallel_calls=2).unbatch()
  dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return dataset.with_options(_options())


def eval_dataset(data_config, source) -> tf.data.Dataset:
  """This process's slice of every global eval batch; rows past the end are padding, mask False."""
  global_batch = data_config.batch_size
  local = _local_batch_size(global_batch)
  size, crops, ratio = (data_config.image_size, data_config.eval_crops,
                         data_sources.resize_ratio(data_config))
  if crops not in (1, 10):
    raise DataError(f'data.eval_crops={crops} is not supported; use 1 or 10.')

  @tf.autograph.experimental.do_not_convert
  def read(batch_index):
    positions = _process_positions(batch_index * global_batch, local=local)
    payload, labels = source.records(tf.minimum(positions, source.num_examples - 1))
    return payload, labels, positions < source.num_examples

  @tf.autograph.experimental.do_not_convert
  def crop(payload, label, mask):
    image_bytes = source.image_bytes(payload)
    image = (preprocess.ten_crop(image_bytes, size=size, resize_ratio=ratio) if crops == 10
             else preprocess.eval_image(image_bytes, size=size, resize_ratio=ratio))
    return {'image': image, 'label': label, 'mask': mask}
  num_batches = -(-source.num_examples // global_batch)
  dataset = tf.data.Dataset.range(num_batches).map(read, num_parallel_calls=2).unbatch()
  dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(local).prefetch(tf.data.AUTOTUNE)
  return dataset.with_options(_options())


def _numpy_batches(dataset: tf.data.Dataset, where: str) -> Iterator[dict]:
  decode_error = tf.errors.InvalidArgumentError  # a local: module globals are gone at exit
  try:
    yield from dataset.as_numpy_iterator()
  except decode_error as e:
    raise DataError(f'A corrupt image in {where} ({str(e).splitlines()[0][:120]}): find it with '
                    'python -m alexnet_jax.tools.prepare --verify, or set data.on_corrupt=skip '
                    'after it.') from None


def create_train_iterator(data_config, *, seed: int, num_classes: int,
                          start_step: int = 0) -> Iterator[dict]:
  data_config = with_fake_imagenet(data_config)
  if data_config.name == 'synthetic':
    return _synthetic_train(data_config, seed, num_classes, start_step)
  source = downsample.open_source(data_config, data_config.train_split)
  dataset = train_dataset(data_config, source, seed=seed, start_step=start_step)
  return _numpy_batches(dataset, f'{data_config.name} {data_config.train_split}')


def create_eval_iterator(data_config, *, seed: int, num_classes: int) -> Iterator[dict]:
  data_config = with_fake_imagenet(data_config)
  if data_config.name == 'synthetic':  # real sources read every example once, in order: no seed
    return _synthetic_eval(data_config, seed, num_classes)
  source = downsample.open_source(data_config, data_config.eval_split)
  dataset = eval_dataset(data_config, source)
  return _numpy_batches(dataset, f'{data_config.name} {data_config.eval_split}')


def check_image_array(item) -> np.ndarray:
  """The item as a uint8 [H, W, 3] array, or DataError."""
  array = np.asarray(item)
  if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
    raise DataError(f'an image array of {array.dtype} {array.shape}: give uint8 [height, width, '
                    '3] pixels.')
  return array


def image_batches(items, *, size: int, batch_size: int,
                  resize_ratio: float = preprocess.RESIZE_RATIO) -> Iterator[tuple]:
  """Files or uint8 [H, W, 3] arrays, read as evaluation reads them (centre crop), in batches.

  Yields (indices [n], uint8 images [n, size, size, 3], unreadable indices) in input order; an
  unreadable item is reported, with the batch in which it would have been, instead of failing it.
  """
  values = []
  for item in items:
    if isinstance(item, str):
      values.append(item)
      continue
    array = check_image_array(item)
    values.append(tf.io.encode_png(array).numpy())  # lossless: decoded as a PNG file would be
  if not values:
    return
  is_path = tf.constant([isinstance(item, str) for item in items])

  @tf.autograph.experimental.do_not_convert
  def load(index, from_file, value):
    image_bytes = tf.cond(from_file, lambda: tf.io.read_file(value), lambda: value)
    return index, preprocess.eval_image(image_bytes, size=size, resize_ratio=resize_ratio)
  dataset = tf.data.Dataset.from_tensor_slices(
      (tf.range(len(values), dtype=tf.int64), is_path, tf.constant(values, tf.string)))
  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
  dataset = dataset.batch(batch_size).prefetch(2).with_options(_options())
  expected = 0
  for indices, images in dataset.as_numpy_iterator():
    bad = sorted(set(range(expected, int(indices[-1]) + 1)) - set(indices.tolist()))
    expected = int(indices[-1]) + 1
    yield indices, images, bad
  if expected < len(values):
    yield np.zeros([0], np.int64), np.zeros([0, size, size, 3], np.uint8), list(range(expected,
                                                                                   len(values)))
