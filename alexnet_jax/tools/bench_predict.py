"""tools.predict's path against the bare jitted forward pass, on the same images, in one run.

  python -m alexnet_jax.tools.bench_predict [--images=512 --size=224 --rounds=3 --batch=64]

A torchvision-layout AlexNet (random weights, 1000 classes) is written as a run with
import_torchvision's writer; the images are JPEGs of size x size drawn in the run.
  bare     jax.jit(model.apply) on the decoded, centre-cropped uint8 batches, already in memory
  predict  Classifier.predict on the files: read, decode, crop, batch, forward, softmax, top-5
Rounds alternate; the ratio is the median of per-round ratios (the machine may be shared).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax import fake_imagenet
from alexnet_jax.tools import import_torchvision

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  from alexnet_jax import inference
  from alexnet_jax import input_pipeline
  from alexnet_jax import model as model_lib

FLAGS = flags.FLAGS


def _write_images(folder: str, count: int, size: int) -> list[str]:
  rng = np.random.default_rng(0)
  paths = []
  for i in range(count):
    path = os.path.join(folder, f'{i:05d}.jpg')
    with open(path, 'wb') as f:
      f.write(fake_imagenet.encode_jpeg(fake_imagenet.draw_image(rng, i % 10, size, size,
                                                                  noise=20.0), quality=90))
    paths.append(path)
  return paths


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main(argv):
  del argv
  cli.quiet_logs()
  with tempfile.TemporaryDirectory(prefix='bench_predict_') as root:  # about 0.5 GB: removed
    result = measure(root)
  if FLAGS.json:  # stdout holds the JSON object alone; the text went to stderr
    print(json.dumps(result))


def _say(text: str) -> None:
  print(text, file=sys.stderr if FLAGS.json else sys.stdout, flush=True)


def measure(root: str) -> dict:
  """The rounds of bare forward against predict on the files written under root."""
  model = model_lib.AlexNet(variant='torchvision', num_classes=FLAGS.classes,
                            fc_width=FLAGS.fc_width)
  params = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 224, 224, 3), np.float32))['params']
  import_torchvision.write_workdir(jax.tree.map(np.asarray, params), os.path.join(root, 'run'))
  paths = _write_images(root, FLAGS.images, FLAGS.size)
  clf = inference.load(os.path.join(root, 'run'), batch_size=FLAGS.batch)
  batches = [images for _, images, _ in input_pipeline.image_batches(
      paths, size=clf.image_size, batch_size=FLAGS.batch)]
  # On every local device, as predict's forward: the batch split over them (padded to a multiple).
  devices = jax.local_devices()
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ('batch',)),
                                        jax.sharding.PartitionSpec('batch'))
  bare_forward = jax.jit(lambda p, x: model.apply({'params': p}, model_lib.standardize(x)),
                         out_shardings=sharding)
  pad = lambda x: np.concatenate([x, np.zeros((-len(x) % len(devices),) + x.shape[1:], x.dtype)])
  bare = lambda: [np.asarray(bare_forward(clf.params, jax.device_put(pad(x), sharding)))
                  for x in batches]
  predict = lambda: clf.predict(paths)
  bare(), predict()  # compile both
  rows = []
  for round_ in range(FLAGS.rounds):
    t_bare, t_predict = _timed(bare), _timed(predict)
    rows.append({'round': round_, 'bare_images_per_sec': FLAGS.images / t_bare,
                 'predict_images_per_sec': FLAGS.images / t_predict,
                 'predict_over_bare_time': t_predict / t_bare})
    _say(f'round {round_}: bare {rows[-1]["bare_images_per_sec"]:.1f} img/s, predict '
          f'{rows[-1]["predict_images_per_sec"]:.1f} img/s, predict time / bare time '
          f'{rows[-1]["predict_over_bare_time"]:.3f}')
  median = float(np.median([r['predict_over_bare_time'] for r in rows]))
  _say(f'median predict time / bare forward time: {median:.3f} ({FLAGS.images} images of '
       f'{FLAGS.size} px, batch {FLAGS.batch}, {len(devices)} device(s), load average '
       f'{os.getloadavg()[0]:.1f})')
  return {'rounds': rows, 'median_ratio': median, 'images': FLAGS.images,
          'devices': len(devices)}


if __name__ == '__main__':
  flags.DEFINE_integer('images', 512, 'Images.')
  flags.DEFINE_integer('size', 224, 'Side of the square JPEGs.')
  flags.DEFINE_integer('rounds', 3, 'Alternating rounds.')
  flags.DEFINE_integer('batch', 64, 'Batch size of both.')
  flags.DEFINE_integer('classes', 1000, 'Classes of the model (1000: ImageNet\'s, with its names).')
  flags.DEFINE_integer('fc_width', 4096, 'FC6/FC7 width (smaller: a quick smoke run).')
  flags.DEFINE_bool('json', False, 'Print the rounds as one JSON object on stdout (the text goes '
                    'to stderr).')
  cli.run(main)
