"""Predictions and nearest neighbours in feature space for held-out images (the paper's Figure 4).

  python -m alexnet_jax.tools.neighbours --workdir=runs/alexnet [--queries=8] --output=nn.png \
      [--step=N|best] [--max_train=N] [--config.data.KEY=VALUE ...]

For each query (the first --queries images of the run's eval split): its top-5 classes with their
probabilities (the true class marked) and the six training images whose last-hidden-layer (FC7,
after its activation) feature vectors are nearest in Euclidean distance. Training images are read
as evaluation reads them (centre crop) and their features computed in batches split over all
local devices; the nearest are kept as the batches stream by, so memory does not grow with the
training set. --config.data.* overrides read other data (another split, a bigger set).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  import jax.numpy as jnp
  from alexnet_jax import inference
  from alexnet_jax import input_pipeline
  from alexnet_jax import metrics
  from alexnet_jax import model as model_lib
  from alexnet_jax import paths
  from alexnet_jax import workdir as workdir_lib

FLAGS = flags.FLAGS
FEATURE_LAYER = 'fc7'  # the last hidden layer: 4096 units in the paper
TOP_K = 5


def define_flags(argv) -> None:
  """--workdir, --step, --config (the run's saved config, each key overridable) and the rest."""
  workdirs = [a.split('=', 1)[1] for a in argv if a.startswith('--workdir=')]
  if not workdirs and not cli.asks_for_help(argv):
    cli.fail('--workdir is required: python -m alexnet_jax.tools.neighbours --workdir=W '
             '--output=FILE.png [--queries=8]')
  cli.define_run_flags(required=False)  # required: checked above, help or not
  if workdirs:  # (--help alone: the run's config keys come with --workdir)
    path = os.path.join(workdir_lib.run_dir(workdirs[-1]), 'config.json')
    if not paths.exists(path):
      cli.fail(f'{workdirs[-1]} has no config.json: give the workdir of a trained run.')
    cli.define_config_dict(workdir_lib.read_config(path), argv, "The run's config; override any key.")
  flags.DEFINE_integer('queries', 8, 'Held-out images shown, one row each.')
  flags.DEFINE_integer('neighbours', 6, 'Nearest training images per query.')
  flags.DEFINE_integer('max_train', 0, 'Training images searched (0: all of the train split).')
  flags.DEFINE_string('output', None, 'The PNG to write.')
  flags.DEFINE_integer('dpi', 100, 'Pixels per inch of the PNG (a row is 1.75 inches high).')


def make_features(clf):
  """images [B, S, S, 3] uint8 -> (logits [B, K], features [B, F]), the batch split over devices."""
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ('batch',))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))
  act = jnp.tanh if clf.model.option('activation') == 'tanh' else jax.nn.relu

  def forward(params, images_BHWC):
    logits_BK, state = clf.model.apply(
        {'params': params}, model_lib.standardize(images_BHWC), train=False,
        capture_intermediates=lambda module, _: module.name == FEATURE_LAYER,
        mutable=['intermediates'])
    return logits_BK, act(state['intermediates'][FEATURE_LAYER]['__call__'][0])
  jitted = jax.jit(forward, out_shardings=(sharding, sharding))

  def features(images_BHWC):
    count, devices = len(images_BHWC), mesh.devices.size
    padded = np.concatenate([images_BHWC, np.zeros(
        (-count % devices,) + images_BHWC.shape[1:], images_BHWC.dtype)])
    logits_BK, features_BF = jitted(clf.params, jax.device_put(padded, sharding))
    return np.asarray(logits_BK)[:count], np.asarray(features_BF)[:count]
  return features


def _batches(data_config, split: str, config, limit: int = 0):
  """(images, labels, mask) of a split in order, centre-cropped, in batches of one shape (one
  compile); mask is False on padding and past the first `limit` images (0: all)."""
  data_config = data_config.copy_and_resolve_references()
  data_config.eval_split = split
  data_config.eval_crops = 1  # the centre crop, whatever the run evaluated with
  done = 0
  for batch in input_pipeline.create_eval_iterator(data_config, seed=config.seed,
                                                   num_classes=config.model.num_classes):
    mask = batch['mask'] & (np.cumsum(batch['mask']) <= (limit - done if limit else len(
        batch['mask'])))
    yield batch['image'], batch['label'], mask
    done += int(mask.sum())
    if limit and done >= limit:
      return


def search(features, queries_QF, batches, k: int, total: int):
  """The k training images nearest each query: (distances [Q, k], images, labels), and the count."""
  best_d = np.full((len(queries_QF), 0), np.inf)
  best_images, best_labels = None, None
  start, seen = time.time(), 0
  for images, labels, mask in batches:
    _, train_BF = features(images)
    images, labels, train_BF = images[mask], labels[mask], train_BF[mask]
    d_QB = np.sqrt(np.maximum(((queries_QF[:, None, :] - train_BF[None]) ** 2).sum(-1), 0))
    if best_images is None:
      best_images = np.zeros((len(queries_QF), 0) + images.shape[1:], images.dtype)
      best_labels = np.zeros((len(queries_QF), 0), labels.dtype)
    # Sort the distances, then gather only the k chosen images per query (not Q copies of the
    # batch): from the kept ones (index < kept) or from this batch.
    kept = best_d.shape[1]
    all_d = np.concatenate([best_d, d_QB], axis=1)
    order = np.argsort(all_d, axis=1, kind='stable')[:, :k]
    new = order >= kept
    from_batch = np.where(new, order - kept, 0)
    from_kept = np.where(new, 0, order)
    rows = np.arange(len(queries_QF))[:, None]
    pick = lambda kept_values, batch_values: np.where(
        new.reshape(new.shape + (1,) * (batch_values.ndim - 1)), batch_values[from_batch],
        kept_values[rows, from_kept] if kept else batch_values[from_batch])
    best_d = all_d[rows, order]
    best_images, best_labels = pick(best_images, images), pick(best_labels, labels)
    seen += len(images)
    rate = seen / max(time.time() - start, 1e-9)
    print(f'\rfeatures: {seen}/{total} training images, {rate:.0f} images/s, ETA '
          f'{metrics.format_duration((total - seen) / rate)}', end='', file=sys.stderr, flush=True)
  print(file=sys.stderr)
  return (best_d, best_images, best_labels), seen, time.time() - start


def title(workdir: str, step: int, neighbours: int, seen: int) -> str:
  """The picture's title: the workdir as the user gave it (no machine's absolute path)."""
  return (f'{workdir} step {step}: top-{TOP_K} predictions and the {neighbours} nearest of {seen} '
          f'training images in {FEATURE_LAYER} feature space')


def draw(queries, logits_QK, nearest, names, path: str, title: str, dpi: int = 100) -> None:
  """One row per query: the image, its top-5 bars (true class in orange), its nearest images."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  images, labels = queries
  distances, near_images, near_labels = nearest
  k = near_images.shape[1]
  probs_QK = np.exp(logits_QK - logits_QK.max(-1, keepdims=True))
  probs_QK /= probs_QK.sum(-1, keepdims=True)
  fig, axes = plt.subplots(len(images), k + 2, squeeze=False, figsize=(2.0 * k + 5.6,
                                                                       1.75 * len(images) + 0.7),
                           gridspec_kw={'width_ratios': [1, 2.2] + [1] * k})
  for q, row in enumerate(axes):
    row[0].imshow(images[q])
    row[0].set_title(f'query\n{names[labels[q]][:18]}', fontsize=8)
    best = np.argsort(-probs_QK[q], kind='stable')[:TOP_K]
    colors = ['tab:orange' if c == labels[q] else 'tab:blue' for c in best]
    row[1].barh(range(len(best))[::-1], probs_QK[q, best], color=colors)
    row[1].set_yticks(range(len(best))[::-1], [names[c][:18] for c in best], fontsize=7)
    row[1].set_xlim(0, 1)
    row[1].tick_params(axis='x', labelsize=7)
    row[1].set_title('top-5 probability (orange: true)', fontsize=8)
    for j in range(k):
      row[j + 2].imshow(near_images[q, j])
      mark = '' if near_labels[q, j] == labels[q] else ' (x)'
      row[j + 2].set_title(f'{names[near_labels[q, j]][:12]}{mark}\nd={distances[q, j]:.3g}',
                           fontsize=7)
    for axis in [row[0]] + list(row[2:]):
      axis.set_xticks([])
      axis.set_yticks([])
  fig.suptitle(title + '\n(x): neighbour of another class than the query; d: Euclidean distance',
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; config keys are set as --config.KEY=VALUE.')
  if not FLAGS.output or not FLAGS.output.lower().endswith('.png'):
    cli.fail(f'--output={FLAGS.output}: give a .png file name.')
  config = FLAGS.config
  clf = inference.load(FLAGS.workdir, cli.step(), ema=FLAGS.ema)
  data = input_pipeline.with_fake_imagenet(config.data)
  info = input_pipeline.get_dataset_info(data, num_classes=config.model.num_classes)
  features = make_features(clf)
  first = next(_batches(data, data.eval_split, config, limit=FLAGS.queries), None)
  if first is None or not first[2].any():
    cli.fail(f'the eval split {data.eval_split} has no images to query with.')
  queries = first[0][first[2]], first[1][first[2]]
  logits_QK, queries_QF = features(queries[0])
  total = min(info.num_train_examples, FLAGS.max_train or info.num_train_examples)
  nearest, seen, seconds = search(features, queries_QF, _batches(
      data, data.train_split, config, FLAGS.max_train), FLAGS.neighbours, total)
  with cli.output(FLAGS.output):
    draw(queries, logits_QK, nearest, clf.class_names, FLAGS.output,
         title=title(FLAGS.workdir, clf.step, FLAGS.neighbours, seen), dpi=FLAGS.dpi)
  cli.wrote(FLAGS.output, f'{len(queries[0])} queries; features of {seen} training images in '
            f'{seconds:.1f} s ({seen / max(seconds, 1e-9):.0f} images/s) on '
            f'{jax.local_device_count()} device(s)')

if __name__ == '__main__':
  define_flags(sys.argv)
  cli.run(main)
