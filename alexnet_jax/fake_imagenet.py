"""A small ImageNet in the exact ILSVRC2012 archive format, with procedurally drawn learnable classes.

Written by data.fake_imagenet.* on first use, or by python -m alexnet_jax.tools.fake_imagenet.

ILSVRC2012_img_train.tar holds <synset>.tar per class (the first K synsets of TFDS's labels.txt, so
labels are 0..K-1), each holding <synset>_<i>.JPEG. ILSVRC2012_img_val.tar holds
ILSVRC2012_val_00000001.JPEG ..; TFDS labels the i-th sorted file with line i of its
validation_labels.txt, so each is drawn for that line's class (of all 1000): evaluate a K-class set
on a held-out slice of train ('train[90%:]'). A class is a shape and a fill texture; colours,
position and scale are random per image, so mean colour does not give the class away.
"""
import fcntl
import io
import json
import os
import tarfile

import numpy as np
from absl import logging
from PIL import Image

from alexnet_jax import data_sources
from alexnet_jax import errors

SHAPES = ('disc', 'square', 'triangle', 'cross', 'ring', 'diamond', 'bars', 'frame')
TEXTURES = ('solid', 'hstripes', 'vstripes', 'diagonal', 'checker')
MARKER = 'fake_imagenet.json'
VERSION = 2  # of draw_image: in the marker and the cache folder's name, so old sets are not reused
MIN_CONTRAST = 120.0  # RGB distance between the colours that draw the class


def synsets(kind: str = 'labels') -> list[str]:
  """TFDS's imagenet2012 synset list ('labels', sorted) or its validation labels, in file order."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  path = tfds.core.tfds_path(f'datasets/imagenet2012/{kind}.txt')
  return path.read_text().split()


def _shape_mask(shape: str, dy, dx, radius):
  ay, ax = np.abs(dy), np.abs(dx)
  r = radius
  if shape == 'disc':
    return dy ** 2 + dx ** 2 < r ** 2
  if shape == 'square':
    return (ay < 0.8 * r) & (ax < 0.8 * r)
  if shape == 'triangle':
    return (dy < 0.7 * r) & (ax < (dy + r) * 0.6)
  if shape == 'cross':
    return ((ay < 0.3 * r) & (ax < r)) | ((ax < 0.3 * r) & (ay < r))
  if shape == 'ring':
    return (dy ** 2 + dx ** 2 < r ** 2) & (dy ** 2 + dx ** 2 > (0.55 * r) ** 2)
  if shape == 'diamond':
    return ay + ax < r
  if shape == 'bars':
    return (ax < r) & (ay < r) & (np.abs(ay - 0.55 * r) < 0.2 * r)
  return (ay < r) & (ax < r) & ((ay > 0.6 * r) | (ax > 0.6 * r))  # frame


def _texture(texture: str, dy, dx, period):
  if texture == 'solid':
    return np.ones(dy.shape, bool)
  phase = {'hstripes': dy, 'vstripes': dx, 'diagonal': dy + dx}.get(texture)
  if phase is not None:
    return (phase // period) % 2 == 0
  return ((dy // period) + (dx // period)) % 2 == 0  # checker


def _contrasting(rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
  """A uniform random RGB colour at least MIN_CONTRAST away from `other`."""
  while True:
    colour = rng.uniform(0, 255, 3)
    if np.linalg.norm(colour - other) >= MIN_CONTRAST:
      return colour


def draw_image(rng: np.random.Generator, label: int, height: int, width: int,
               noise: float = 8.0) -> np.ndarray:
  """uint8 [height, width, 3]: class `label`'s shape and texture at a random place, scale and colours.

  The colours are random, but the shape stands out from the background and the texture's two
  colours from each other (MIN_CONTRAST apart), so every image shows its class.
  """
  shape = SHAPES[label % len(SHAPES)]
  texture = TEXTURES[label % len(TEXTURES)]  # 8 and 5 coprime: 40 distinct pairs
  side = min(height, width)
  radius = rng.uniform(0.3, 0.45) * side
  cy = rng.uniform(radius, height - radius)
  cx = rng.uniform(radius, width - radius)
  yy, xx = np.mgrid[:height, :width].astype(np.float32)
  dy, dx = yy - cy, xx - cx
  period = side * (0.11 + 0.02 * ((label // 40) % 8))  # more classes: coarser fills
  inside = _shape_mask(shape, dy, dx, radius)
  fill = _texture(texture, dy, dx, period)
  background = rng.uniform(0, 255, 3)
  first = _contrasting(rng, background)
  second = _contrasting(rng, first)
  image = np.where(inside[..., None], np.where(fill[..., None], first, second), background)
  image += rng.normal(0, noise, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='JPEG', quality=quality)
  return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _image_size(rng, image_px):
  """Random aspect up to 4:3, the shorter side image_px."""
  long_side = int(image_px * rng.uniform(1.0, 4 / 3))
  return (image_px, long_side) if rng.random() < 0.5 else (long_side, image_px)


def write(manual_dir: str, *, num_classes: int, train_per_class: int, val_per_class: int,
          image_px: int = 80, seed: int = 0) -> None:
  """Writes ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into manual_dir."""
  names, val_names = synsets('labels'), synsets('validation_labels')
  if not 1 <= num_classes <= len(names):
    raise errors.ConfigError(f'--num_classes={num_classes} must be in 1..{len(names)}.')
  os.makedirs(manual_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  with tarfile.open(os.path.join(manual_dir, 'ILSVRC2012_img_train.tar'), 'w') as outer:
    for label in range(num_classes):
      inner_bytes = io.BytesIO()
      with tarfile.open(fileobj=inner_bytes, mode='w') as inner:
        for i in range(train_per_class):
          image = draw_image(rng, label, *_image_size(rng, image_px))
          _add(inner, f'{names[label]}_{i + 1}.JPEG', encode_jpeg(image))
      _add(outer, f'{names[label]}.tar', inner_bytes.getvalue())
  index = {name: i for i, name in enumerate(names)}
  with tarfile.open(os.path.join(manual_dir, 'ILSVRC2012_img_val.tar'), 'w') as val:
    for i in range(num_classes * val_per_class):
      image = draw_image(rng, index[val_names[i]], *_image_size(rng, image_px))
      _add(val, f'ILSVRC2012_val_{i + 1:08d}.JPEG', encode_jpeg(image))


def ensure_prepared(manual_dir: str, data_dir: str, *, num_classes: int = 10,
                    train_per_class: int = 300, val_per_class: int = 10, image_px: int = 80) -> None:
  """Generates a fake ImageNet in manual_dir and prepares it with TFDS in data_dir; no-op when done.

  Safe when several local processes call it at once: one generates, the others wait for it.
  """
  params = dict(num_classes=num_classes, train_per_class=train_per_class,
                val_per_class=val_per_class, image_px=image_px)
  stamp = dict(params, version=VERSION)  # what the marker records
  marker = os.path.join(data_dir, MARKER)
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, '.fake_imagenet.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if os.path.exists(marker):
      with open(marker) as f:
        if json.load(f) == stamp:
          return
      raise errors.ConfigError(f'{data_dir} holds a fake ImageNet made with other parameters ({marker}); '
                       'delete that folder or use another data_dir.')
    logging.info('Generating a fake ImageNet %s in %s.', params, manual_dir)
    write(manual_dir, **params)
    data_sources.prepare_tfds('imagenet2012', data_dir, manual_dir)
    with open(marker, 'w') as f:
      json.dump(stamp, f)
