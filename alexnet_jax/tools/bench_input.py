"""Images/s of the training input pipeline on ImageNet-sized JPEGs, beside a plain PIL + numpy loop.

  python -m alexnet_jax.tools.bench_input [--num_images=256 --batch_size=128 --seconds=10]

Both do the same work per image: decode, the paper's random crop (256/224), resize to 224, flip,
PCA lighting, normalise, batch. The tf.data figure per core is measured on one thread; the PIL loop
is single-threaded. The JPEGs are drawn about 400x350 and 110 KB, as ImageNet's average.
"""
import io
import time

import ml_collections
import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

from alexnet_jax import data_sources, input_pipeline, preprocess
from alexnet_jax.tools import fake_imagenet

FLAGS = flags.FLAGS
flags.DEFINE_integer('num_images', 256, 'Distinct JPEGs, cycled through.')
flags.DEFINE_integer('batch_size', 128, 'Batch size.')
flags.DEFINE_integer('image_size', 224, 'Crop size.')
flags.DEFINE_float('seconds', 10.0, 'Time per measurement.')


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
  """ImageNet-like JPEGs: about 400x350 and 110 KB (drawn shapes plus pixel noise, quality 96)."""
  rng = np.random.default_rng(seed)
  jpegs = []
  for i in range(count):
    height, width = rng.integers(330, 370), rng.integers(380, 420)
    image = fake_imagenet.draw_image(rng, i, height, width, noise=24.0)
    jpegs.append(fake_imagenet.encode_jpeg(image, quality=96))
  return jpegs


def memory_source(jpegs: list[bytes]) -> data_sources.Source:
  images = tf.constant(jpegs)
  return data_sources.Source(
      num_examples=len(jpegs), num_classes=1000,
      fetch=lambda idx: (tf.gather(images, idx), tf.zeros(tf.shape(idx), tf.int32)),
      load=lambda payload: payload, describe=str)


def bench_tf(jpegs, data_config, threads: int, seconds: float) -> float:
  dataset = input_pipeline.train_dataset(data_config, memory_source(jpegs), seed=0)
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  iterator = dataset.with_options(options).as_numpy_iterator()
  next(iterator)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    count += next(iterator)['image'].shape[0]
  return count / (time.perf_counter() - start)


def pil_example(jpeg: bytes, rng: np.random.Generator, size: int) -> np.ndarray:
  """The same augmentation with PIL and numpy."""
  image = Image.open(io.BytesIO(jpeg)).convert('RGB')
  width, height = image.size
  side = min(width, height)
  crop = int(side * size / preprocess.resize_side(size))
  y = (height - side) // 2 + rng.integers(0, side - crop + 1)
  x = (width - side) // 2 + rng.integers(0, side - crop + 1)
  image = image.crop((x, y, x + crop, y + crop)).resize((size, size), Image.BILINEAR)
  if rng.random() < 0.5:
    image = image.transpose(Image.FLIP_LEFT_RIGHT)
  shift = np.array(preprocess.EIGVEC) @ (rng.normal(0, 0.1, 3) * np.array(preprocess.EIGVAL))
  pixels = np.asarray(image, np.float32) / 255.0
  return ((pixels + shift - preprocess.MEAN_RGB) / preprocess.STD_RGB).astype(np.float32)


def bench_pil(jpegs, batch_size: int, size: int, seconds: float) -> float:
  rng = np.random.default_rng(0)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    order = rng.integers(0, len(jpegs), batch_size)
    batch = np.stack([pil_example(jpegs[i], rng, size) for i in order])
    count += batch.shape[0]
  return count / (time.perf_counter() - start)


def main(argv):
  del argv
  jpegs = make_jpegs(FLAGS.num_images)
  print(f'{len(jpegs)} JPEGs, mean {np.mean([len(j) for j in jpegs]) / 1e3:.0f} KB')
  data_config = ml_collections.ConfigDict(dict(
      batch_size=FLAGS.batch_size, image_size=FLAGS.image_size, crop='paper', flip=True,
      pca_lighting_std=0.1))
  pil = bench_pil(jpegs, FLAGS.batch_size, FLAGS.image_size, FLAGS.seconds)
  one = bench_tf(jpegs, data_config, 1, FLAGS.seconds)
  two = bench_tf(jpegs, data_config, 2, FLAGS.seconds)
  print(f'PIL + numpy loop, 1 core:        {pil:7.0f} img/s')
  print(f'tf.data pipeline, 1 core:        {one:7.0f} img/s  ({one / pil:.1f}x PIL)')
  print(f'tf.data pipeline, 2 threads:     {two:7.0f} img/s')


if __name__ == '__main__':
  app.run(main)
