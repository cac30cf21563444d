"""Classifies images with a trained run: top-k class names and probabilities per image.

  python -m alexnet_jax.tools.predict --workdir=runs/cats_dogs photo.jpg more_photos/ [--top_k=2]
  python -m alexnet_jax.tools.predict --workdir=... --json photos/ > predictions.jsonl
  python -m alexnet_jax.tools.predict --workdir=runs/seed0 --workdir=runs/seed1 photo.jpg

Several --workdir: an ensemble, the mean of the runs' probabilities (the runs must share their
classes and image size). --ema: the moving average of the parameters (optimizer.ema_decay > 0).

Folders are walked for JPEG, PNG, BMP, GIF and WebP files. Images are read as evaluation reads them
(shorter side to 256/224 of the crop, centre crop) and classified in batches on every device: up
to 16 images with PIL and numpy (alexnet_jax/pil_images.py; no TensorFlow import, pixels within a
few levels of tf.data's for JPEGs), more through tf.data.
--json: one object per image per line, {"path", "predictions": [{"label", "name",
"probability"}, ...]} best first; the rate goes to stderr.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import inference

FLAGS = flags.FLAGS


def define_flags() -> None:
  cli.define_run_flags(several=True)
  flags.DEFINE_integer('top_k', 5, 'Classes shown per image (1 or more).')
  flags.register_validator('top_k', lambda k: k >= 1,
                           'give 1 or more classes per image (--top_k=1: the best one only).')
  flags.DEFINE_bool('json', False, 'One JSON object per image per line instead of a table.')
  flags.DEFINE_bool('skip_bad', False, 'Warn about unreadable images and go on, instead of '
                    'stopping at the first.')
  flags.DEFINE_integer('batch_size', 64, 'Images per forward pass.')


def _table_rows(result: dict, top_k: int) -> list[str]:
  if 'error' in result:
    return [f'{result["path"]}: skipped ({result["error"]})']
  best = result['predictions']
  lines = [result['path']]
  lines += [f'  {p["probability"] * 100:6.2f}%  {p["name"]} ({p["label"]})' for p in best[:top_k]]
  return lines


def main(argv):
  cli.quiet_logs()
  if len(argv) < 2:
    cli.fail('no images given: python -m alexnet_jax.tools.predict --workdir=W IMAGE_OR_FOLDER...')
  paths = inference.find_images(argv[1:])
  if not paths:
    cli.fail(f'no JPEG, PNG, BMP, GIF or WebP files in {argv[1:]} (TIFF and HEIC are not read: '
             'convert them to PNG or JPEG).')
  clf = inference.load(FLAGS.workdir, cli.step(), batch_size=FLAGS.batch_size, ema=FLAGS.ema)
  start, done = time.time(), 0
  for result in clf.iter_predict(paths, top_k=FLAGS.top_k, skip_bad=FLAGS.skip_bad):
    if 'error' in result:
      print(f'warning: {result["path"]} is {result["error"]}; skipped.', file=sys.stderr)
      continue
    done += 1
    print(json.dumps(result) if FLAGS.json else '\n'.join(_table_rows(result, FLAGS.top_k)),
          flush=True)
  elapsed = time.time() - start
  print(f'{done} images in {elapsed:.1f} s ({done / max(elapsed, 1e-9):.1f} images/s), '
        f'{" + ".join(FLAGS.workdir)} step {clf.step}.', file=sys.stderr)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
