"""A trained AlexNet as a classifier: inference.load(workdir) -> logits and top-k predictions.

  clf = inference.load('runs/cats_dogs')            # newest good checkpoint; step=N or 'best'
  clf.predict(['cat.jpg', 'photos/'], top_k=2)       # files, folders or uint8 HWC arrays
  clf.logits(images_BHWC)                            # uint8 pixels: standardised as in training

Images are read as the eval pipeline reads them (shorter side to 256/224 of the crop, centre crop)
and go through in padded batches, split over this process's devices: one compile per batch shape.
"""
import dataclasses
import os
import time
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax import checkpoint
from alexnet_jax import classes
from alexnet_jax import errors
from alexnet_jax import model as model_lib
from alexnet_jax import paths
from alexnet_jax import workdir as workdir_lib

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')
_AXIS = 'batch'


class ImageError(errors.Error, ValueError):
  """An input that is not a readable image; the message names it."""


# Formats people's photos come in that TensorFlow's decoders do not read: (name, magic at offset).
UNSUPPORTED_FORMATS = (('TIFF', 0, b'II*\x00'), ('TIFF', 0, b'MM\x00*'), ('HEIC', 4, b'ftypheic'),
                       ('HEIC', 4, b'ftypheix'), ('HEIF', 4, b'ftypmif1'), ('AVIF', 4, b'ftypavif'))


def unsupported_format(item) -> str | None:
  """'TIFF', 'HEIC', ... when the file at `item` is in a format that is not read here, else None."""
  if not isinstance(item, str):
    return None
  try:
    with open(item, 'rb') as f:
      head = f.read(12)
  except OSError:
    return None
  return next((name for name, at, magic in UNSUPPORTED_FORMATS
               if head[at:at + len(magic)] == magic), None)


def unreadable(item, name: str) -> str:
  """Why an item could not be read, naming its format where that is the reason."""
  found = unsupported_format(item)
  if found:
    return (f'{name} is a {found} image, which is not read here (TensorFlow decodes JPEG, PNG, '
            f'BMP, GIF and WebP): convert it, e.g. PIL.Image.open(path).save(path + \'.png\')')
  return f'{name} is not a readable image'


def find_images(paths: Sequence[str]) -> list[str]:
  """Files as given, folders walked (sorted) for JPEG/PNG/BMP/GIF/WebP; a missing path is an
  error."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      for root, dirs, files in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    elif os.path.isfile(path):
      found.append(path)
    else:
      raise ImageError(f'{path}: no such file or folder.')
  return found


def _bucket(count: int, multiple: int, largest: int) -> int:
  """Padded batch size: a power of two times `multiple`, at most `largest` (few compiles)."""
  size = multiple
  while size < count and size < largest:
    size *= 2
  return min(size, largest)


@dataclasses.dataclass
class Classifier:
  """A trained AlexNet; build it with load()."""
  config: ml_collections.ConfigDict
  params: dict  # replicated on this process's devices
  class_names: list[str]
  class_ids: list[str]
  step: int
  batch_size: int = 64

  def __post_init__(self):
    devices = np.array(jax.local_devices())
    self._mesh = jax.sharding.Mesh(devices, (_AXIS,))
    self._batch_sharding = NamedSharding(self._mesh, P(_AXIS))
    self.batch_size = -(-self.batch_size // devices.size) * devices.size
    self.model = model_lib.build(self.config.model)
    self.image_size = self.config.data.image_size
    self.compiles = 0  # traces of the forward pass: one per batch shape

    def forward(params, images_BHWC):
      self.compiles += 1
      if images_BHWC.dtype == jnp.uint8:  # pixels: standardised as in training
        images_BHWC = model_lib.standardize(images_BHWC)
      return self.model.apply({'params': params}, images_BHWC, train=False)
    self._forward = jax.jit(forward, out_shardings=self._batch_sharding)

  def logits(self, images_BHWC) -> np.ndarray:
    """Logits [B, K] of uint8 images [B, S, S, 3], standardised as in training."""
    images_BHWC = np.asarray(images_BHWC)
    if images_BHWC.ndim != 4 or images_BHWC.shape[-1] != 3 or images_BHWC.dtype != np.uint8:
      raise ImageError(f'images of {images_BHWC.dtype} {images_BHWC.shape}: expected uint8 '
                       '[batch, height, width, 3] pixels (standardised floats: '
                       'logits_standardized).')
    return self._batched_logits(images_BHWC)

  def logits_standardized(self, images_BHWC) -> np.ndarray:
    """Logits [B, K] of float32 images [B, S, S, 3] already standardised, as torchvision's
    ToTensor and Normalize(ImageNet mean, std) give them (channels last: from a torch batch
    [B, 3, S, S], x.permute(0, 2, 3, 1).numpy()). The run's own preprocessing is the uint8 entry,
    logits; this one takes another pipeline's output as it is."""
    images_BHWC = np.asarray(images_BHWC)
    if images_BHWC.ndim != 4 or images_BHWC.shape[-1] != 3 or images_BHWC.dtype != np.float32:
      raise ImageError(f'images of {images_BHWC.dtype} {images_BHWC.shape}: expected float32 '
                       '[batch, height, width, 3], standardised (uint8 pixels: logits).')
    return self._batched_logits(images_BHWC)

  def _batched_logits(self, images_BHWC) -> np.ndarray:
    count, out = images_BHWC.shape[0], []
    for start in range(0, count, self.batch_size):
      chunk = images_BHWC[start:start + self.batch_size]
      padded = _bucket(len(chunk), self._mesh.devices.size, self.batch_size)
      padding = np.zeros((padded - len(chunk),) + chunk.shape[1:], chunk.dtype)
      logits = self._forward(self.params, jax.device_put(np.concatenate([chunk, padding]),
                                                         self._batch_sharding))
      out.append(np.asarray(logits)[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, self.model.num_classes), np.float32)

  def iter_predict(self, items, *, top_k: int = 5, skip_bad: bool = False) -> Iterator[dict]:
    """Yields {'path', 'predictions': [{'label', 'name', 'probability'}, ...]} per readable item.

    items: file paths and/or uint8 [H, W, 3] arrays (any size: resized and centre-cropped as in
    evaluation). An unreadable file raises ImageError naming it, or with skip_bad yields
    {'path', 'error'} in its place; top_k < 1 raises ValueError.
    """
    if top_k < 1:  # a negative k would slice off the last class: K-1 of them
      raise errors.ConfigError(f'top_k={top_k}: ask for 1 or more classes per image.')
    # pylint: disable=g-import-not-at-top  # TF, lazily
    from alexnet_jax import data_sources
    from alexnet_jax import input_pipeline
    from alexnet_jax import pil_images
    items = list(items)
    names = [item if isinstance(item, str) else f'array {i}' for i, item in enumerate(items)]
    top_k = min(top_k, self.model.num_classes)
    for item in items:
      if not isinstance(item, str):
        input_pipeline.check_image_array(item)
    # A few images: PIL and numpy (no TensorFlow import); many: tf.data's parallel decoding.
    reader = (pil_images.image_batches if len(items) <= PIL_MAX_IMAGES else
              input_pipeline.image_batches)
    for indices, images_BHWC, bad in reader(
        items, size=self.image_size, batch_size=self.batch_size,
        resize_ratio=data_sources.resize_ratio(self.config.data)):
      if bad and not skip_bad:
        raise ImageError(f'{unreadable(items[bad[0]], names[bad[0]])}; remove it or pass '
                         '--skip_bad.')
      results = {index: {'path': names[index], 'error': unreadable(items[index], 'it').removeprefix(
          'it is ')} for index in bad}
      if len(indices):
        logits_BK = self.logits(images_BHWC).astype(np.float64)
        probs_BK = np.exp(logits_BK - logits_BK.max(axis=-1, keepdims=True))
        probs_BK /= probs_BK.sum(axis=-1, keepdims=True)
        best_Bk = np.argsort(-probs_BK, axis=-1, kind='stable')[:, :top_k]
        for row, index in enumerate(indices):
          results[int(index)] = {'path': names[index], 'predictions': [
              {'label': int(k), 'name': self.class_names[k], 'probability': float(probs_BK[row, k])}
              for k in best_Bk[row]]}
      yield from (results[index] for index in sorted(results))  # in input order

  def predict(self, items, *, top_k: int = 5, skip_bad: bool = False) -> list[dict]:
    """iter_predict as a list (see there)."""
    return list(self.iter_predict(items, top_k=top_k, skip_bad=skip_bad))


class EnsembleError(errors.Error, ValueError):
  """The runs of an ensemble do not fit together (classes, image size)."""


def log_mean_probs(logits_MBK) -> np.ndarray:
  """log of the members' mean softmax [B, K] from their logits [M, B, K] (float64, in log space)."""
  logits_MBK = np.asarray(logits_MBK, np.float64)
  top = logits_MBK.max(axis=-1, keepdims=True)
  logprobs = logits_MBK - top - np.log(np.exp(logits_MBK - top).sum(axis=-1, keepdims=True))
  peak = logprobs.max(axis=0)
  return peak + np.log(np.exp(logprobs - peak).mean(axis=0))


@dataclasses.dataclass
class Ensemble(Classifier):
  """Several trained runs as one classifier: the mean of their softmax outputs (the paper's
  Table 2). Its 'logits' are the log of that mean, so softmax(logits) is the mean probability and
  everything built on logits (predict, top-k) works on the ensemble. Build it with load()."""
  members: tuple = ()

  def _batched_logits(self, images_BHWC) -> np.ndarray:
    logits = [member._batched_logits(images_BHWC) for member in self.members]  # pylint: disable=protected-access
    return log_mean_probs(np.stack(logits)).astype(np.float32)


def check_members(paths_, configs, class_lists) -> None:
  """Raises EnsembleError unless the runs share their classes and evaluation image size."""
  from alexnet_jax import data_sources  # pylint: disable=g-import-not-at-top  # TF, lazily
  for path, config, names in zip(paths_[1:], configs[1:], class_lists[1:]):
    if names != class_lists[0]:
      raise EnsembleError(f'the runs of an ensemble must share their classes: {paths_[0]} has '
                          f'{len(class_lists[0])} ({", ".join(class_lists[0][:3])}, ...), {path} '
                          f'has {len(names)} ({", ".join(names[:3])}, ...); drop one of them.')
    for key, value in (('image_size', lambda c: c.data.image_size),
                       ('resize_ratio', lambda c: data_sources.resize_ratio(c.data))):
      if value(config) != value(configs[0]):
        raise EnsembleError(f'the runs of an ensemble must see the same images: data.{key} is '
                            f'{value(configs[0])} in {paths_[0]}, {value(config)} in {path}.')


PIL_MAX_IMAGES = 16  # up to this many images, iter_predict reads them with pil_images


def load(path, step=None, *, batch_size: int = 64, ema: bool = False) -> Classifier:
  """The classifier of a workdir (newest good step; step=N; step='best') or of a step folder;
  ema: with the moving average of its parameters (a run trained with optimizer.ema_decay > 0).

  path: one run, or a list of runs: an Ensemble of them (each at `step`), which must share their
  classes and image size (else EnsembleError).
  """
  if not isinstance(path, str):
    paths_ = list(path)
    if len(paths_) == 1:
      return load(paths_[0], step, batch_size=batch_size, ema=ema)
    members = [load(p, step, batch_size=batch_size, ema=ema) for p in paths_]
    check_members(paths_, [m.config for m in members], [m.class_names for m in members])
    first = members[0]
    return Ensemble(config=first.config, params=first.params, class_names=first.class_names,
                    class_ids=first.class_ids, step=first.step, batch_size=batch_size,
                    members=tuple(members))
  start = time.time()
  host_params, found, saved_config = checkpoint.load_params(path, step, ema=ema)
  config = ml_collections.ConfigDict(saved_config)
  names, ids = classes.read(workdir_lib.run_dir(path), config.model.num_classes)
  replicated = NamedSharding(jax.sharding.Mesh(np.array(jax.local_devices()), (_AXIS,)), P())
  params = jax.device_put(host_params, replicated)
  logging.info('Loaded %s step %d in %.1f s.', path, found, time.time() - start)
  return Classifier(config=config, params=params, class_names=names, class_ids=ids, step=found,
                    batch_size=batch_size)
