"""Images/s per core of the training input pipeline on ImageNet-sized JPEGs, beside a PIL + numpy loop.

  python -m alexnet_jax.tools.bench_input [--rounds=5 --seconds=4 --output=/tmp/bench_input.json]

One process, pinned to one core, TF on one thread (tf.data threadpool 1, intra- and inter-op 1),
in alternating rounds, on JPEGs drawn in the run (about 400x350, 110 KB, as ImageNet's average):
  pipeline     input_pipeline.train_dataset: decode fused with the paper's crop, resize, flip, PCA
               lighting offsets, batch of uint8 (what the training loop gets)
  pipeline_downsampled  the same pipeline reading the paper's down-sampled copy of the same
               JPEGs (data.downsample=True: 256x256 central squares for 224 crops, no resize left);
               the copy is written once before the rounds, at the rate shown as write_downsampled
  pil          the same work with PIL + numpy: decode, crop, bilinear resize, flip, offsets, np.stack
  decode_resize  decode_and_crop_jpeg of the same windows + bilinear resize to the crop size, batched:
               the two ops the pipeline cannot do without at 224 (a reference: at small crops the
               pipeline decodes at reduced DCT scale and can beat it)
  decode_crop  tf.io.decode_and_crop_jpeg of the same crop windows alone
  decode_full  tf.io.decode_jpeg of the whole image alone
Figures are images per CPU-second of this process (time.process_time), medians over rounds: on a
machine shared with other jobs they stay near the unloaded per-core speed while the wall clock does
not. Wall-clock rates and the load average are printed beside them.
"""
from __future__ import annotations

import gc
import io
import json
import os
import tempfile
import time

import ml_collections
import numpy as np
from absl import flags
from PIL import Image

from etils import epy

from alexnet_jax import cli
from alexnet_jax import fake_imagenet
from alexnet_jax import tf_import

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import data_sources
  from alexnet_jax import downsample, input_pipeline, preprocess

tf = tf_import.lazy('tensorflow')  # imported at the first use (tf_import.py)

FLAGS = flags.FLAGS

TARGET_PER_CORE, TARGET_VS_PIL = 1000, 2.0


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
  """ImageNet-like JPEGs: about 400x350 and 110 KB (drawn shapes plus pixel noise, quality 96)."""
  rng = np.random.default_rng(seed)
  jpegs = []
  for i in range(count):
    height, width = rng.integers(330, 370), rng.integers(380, 420)
    image = fake_imagenet.draw_image(rng, i, height, width, noise=20.0)
    jpegs.append(fake_imagenet.encode_jpeg(image, quality=96))
  return jpegs


def memory_source(jpegs: list[bytes]) -> data_sources.Source:
  images = tf.constant(jpegs)
  return data_sources.Source(
      num_examples=len(jpegs), num_classes=1000,
      records=lambda idx: (tf.gather(images, idx), tf.zeros(tf.shape(idx), tf.int32)),
      image_bytes=lambda payload: payload, describe=str)


def _one_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  return dataset.with_options(options)


def pipeline_batches(source, data_config):
  """The training pipeline's numpy batches, on one thread."""
  dataset = input_pipeline.train_dataset(data_config, source, seed=0)
  return _one_thread(dataset).as_numpy_iterator()


def decode_batches(jpegs, batch_size: int, size: int, crop: bool, resize: bool = False):
  """Decode alone (the paper's crop windows, or whole images): batches of decoded shapes; with
  `resize`, the crop resized to `size` (bilinear, as the pipeline) and batched as uint8."""
  images = tf.constant(jpegs)

  @tf.autograph.experimental.do_not_convert
  def decode(index):
    image_bytes = images[index % len(jpegs)]
    if not crop:
      return tf.shape(tf.io.decode_jpeg(image_bytes, channels=3, dct_method='INTEGER_FAST'))
    window = preprocess.paper_window(tf.image.extract_jpeg_shape(image_bytes)[:2], size,
                                     tf.stack([tf.constant(0, tf.int64), index]))
    image = tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3, dct_method='INTEGER_FAST')
    if resize:
      return preprocess.to_uint8(tf.image.resize(image, [size, size]))
    return tf.shape(image)
  dataset = tf.data.Dataset.counter(dtype=tf.int64).map(decode).batch(batch_size)
  return _one_thread(dataset).as_numpy_iterator()


def pil_example(jpeg: bytes, rng: np.random.Generator, size: int, pca_lighting_std: float = 0.1):
  """The pipeline's work with PIL and numpy -> (uint8 [size, size, 3], lighting offset [3])."""
  image = Image.open(io.BytesIO(jpeg)).convert('RGB')
  width, height = image.size
  side = min(width, height)
  crop = int(side * size / preprocess.resize_side(size))
  y = (height - side) // 2 + rng.integers(0, side - crop + 1)
  x = (width - side) // 2 + rng.integers(0, side - crop + 1)
  image = image.resize((size, size), Image.BILINEAR, box=(x, y, x + crop, y + crop))
  if rng.random() < 0.5:
    image = image.transpose(Image.FLIP_LEFT_RIGHT)
  alpha = rng.normal(0, pca_lighting_std, 3)
  return np.asarray(image), np.array(preprocess.EIGVEC) @ (alpha * np.array(preprocess.EIGVAL))


def pil_batches(jpegs, batch_size: int, size: int):
  rng = np.random.default_rng(0)
  while True:
    examples = [pil_example(jpegs[i], rng, size) for i in rng.integers(0, len(jpegs), batch_size)]
    yield {'image': np.stack([e[0] for e in examples]),
           'lighting': np.stack([e[1] for e in examples]).astype(np.float32),
           'label': np.zeros(batch_size, np.int32)}


def measure(batches, batch_size: int, seconds: float) -> tuple[float, float]:
  """(images per CPU-second of this process, images per wall second) over about `seconds`."""
  count, wall, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - wall < seconds:
    next(batches)
    count += batch_size
  return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)


def downsampled_copy(jpegs, size: int, folder: str) -> tuple[data_sources.Source, tuple]:
  """The paper's down-sampled copy of the JPEGs (data.downsample), and its writing rates
  (images per CPU-second, images per wall second)."""
  wall, cpu = time.perf_counter(), time.process_time()
  source = downsample.downsampled_source(memory_source(jpegs), side=preprocess.resize_side(size),
                                           data_dir=folder)
  return source, (len(jpegs) / (time.process_time() - cpu), len(jpegs) / (time.perf_counter() - wall))


def run(jpegs, *, batch_size: int, size: int, rounds: int, seconds: float) -> dict:
  """Alternating rounds of every contender; {name: {'per_core': median, 'wall': median, ...}}.

  Each round builds its contender afresh and closes it after: a live tf.data iterator would keep
  filling its prefetch buffer on CPU time charged to the next contender. The down-sampled copy
  is written once, before the rounds; its writing rate is reported as 'write_downsampled'.
  """
  data_config = ml_collections.ConfigDict(dict(
      batch_size=batch_size, image_size=size, crop='paper', flip=True, pca_lighting_std=0.1))
  with tempfile.TemporaryDirectory() as folder:
    copy, (write_rate, write_wall) = downsampled_copy(jpegs, size, folder)
    figures = _rounds(jpegs, copy, data_config, rounds=rounds, seconds=seconds)
  figures['write_downsampled'] = {'per_core': write_rate, 'wall': write_wall,
                                  'per_core_rounds': [round(write_rate)]}
  return figures


def _rounds(jpegs, copy, data_config, *, rounds: int, seconds: float) -> dict:
  batch_size, size = data_config.batch_size, data_config.image_size
  contenders = {
      'pipeline': lambda: pipeline_batches(memory_source(jpegs), data_config),
      'pipeline_downsampled': lambda: pipeline_batches(copy, data_config),
      'pil': lambda: pil_batches(jpegs, batch_size, size),
      'decode_resize': lambda: decode_batches(jpegs, batch_size, size, crop=True, resize=True),
      'decode_crop': lambda: decode_batches(jpegs, batch_size, size, crop=True),
      'decode_full': lambda: decode_batches(jpegs, batch_size, size, crop=False),
  }
  names = list(contenders)
  samples = {name: [] for name in names}
  for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:  # a different order each round
      batches = contenders[name]()
      next(batches)  # built and warm before the clock starts
      samples[name].append(measure(batches, batch_size, seconds))
      del batches
      gc.collect()
  return {name: {'per_core': float(np.median([s[0] for s in got])),
                 'wall': float(np.median([s[1] for s in got])),
                 'per_core_rounds': [round(s[0]) for s in got]} for name, got in samples.items()}


def report(figures: dict) -> str:
  pipeline, pil = figures['pipeline']['per_core'], figures['pil']['per_core']
  lines = [f'{"img/s per core (CPU time), median":36s} {"per core":>8s} {"wall":>6s}   rounds']
  for name, f in figures.items():
    lines.append(f'{name:36s} {f["per_core"]:8.0f} {f["wall"]:6.0f}   {f["per_core_rounds"]}')
  lines.append(f'pipeline: {pipeline / pil:.2f}x the PIL loop (target {TARGET_VS_PIL}x), '
               f'{pipeline / figures["decode_resize"]["per_core"]:.0%} of decode_resize and '
               f'{pipeline / figures["decode_crop"]["per_core"]:.0%} of decode_crop alone; '
               f'target {TARGET_PER_CORE} img/s per core: '
               f'{"met" if pipeline >= TARGET_PER_CORE else "not met"}.')
  small = figures['pipeline_downsampled']['per_core']
  lines.append(f'pipeline on the paper\'s down-sampled copy (data.downsample=True): {small:.0f} img/s '
               f'per core, {small / pil:.2f}x the PIL loop on the originals; target '
               f'{TARGET_PER_CORE}: {"met" if small >= TARGET_PER_CORE else "not met"}; writing '
               f'the copy once: {figures["write_downsampled"]["per_core"]:.0f} img/s per core.')
  return '\n'.join(lines)


def _pin_and_one_thread(cpu: int) -> int:
  """Pins this process to one core and TF to one thread (before TF runs any op)."""
  cpu = sorted(os.sched_getaffinity(0))[cpu]
  os.sched_setaffinity(0, {cpu})
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  return cpu


def main(argv):
  del argv
  cpu = _pin_and_one_thread(FLAGS.cpu)
  jpegs = make_jpegs(FLAGS.num_images)
  shapes = [Image.open(io.BytesIO(j)).size for j in jpegs]
  load_before = os.getloadavg()
  print(f'{len(jpegs)} JPEGs, mean {np.mean([len(j) for j in jpegs]) / 1e3:.0f} KB, '
        f'{np.mean(shapes, 0)[0]:.0f}x{np.mean(shapes, 0)[1]:.0f}; pinned to core {cpu} of '
        f'{os.cpu_count()}; load average {load_before[0]:.1f}', flush=True)
  figures = run(jpegs, batch_size=FLAGS.batch_size, size=FLAGS.image_size, rounds=FLAGS.rounds,
                seconds=FLAGS.seconds)
  load_after = os.getloadavg()
  print(report(figures))
  print(f'load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on '
        f'{os.cpu_count()} CPUs')
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(dict(figures=figures, load_before=load_before, load_after=load_after,
                     mean_kb=float(np.mean([len(j) for j in jpegs]) / 1e3), cpu=cpu,
                     batch_size=FLAGS.batch_size, image_size=FLAGS.image_size), f, indent=1)


def define_flags() -> None:
  """Command-line flags, defined only when run as a tool (tests import this module)."""
  flags.DEFINE_integer('num_images', 256, 'Distinct JPEGs, cycled through.')
  flags.DEFINE_integer('batch_size', 128, 'Batch size.')
  flags.DEFINE_integer('image_size', 224, 'Crop size.')
  flags.DEFINE_integer('rounds', 5, 'Alternating rounds; the medians are reported.')
  flags.DEFINE_float('seconds', 4.0, 'Time per measurement per round.')
  flags.DEFINE_integer('cpu', -1, 'Core to pin to (-1: the last one).')
  flags.DEFINE_string('output', '', 'Also write the figures as JSON here.')


if __name__ == '__main__':
  define_flags()
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
