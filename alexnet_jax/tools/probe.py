"""Linear probes of a trained run's hidden layers: how much a layer's features tell about another
labelling of other photos, with a linear classifier on top (the transfer-learning diagnostic).

  python -m alexnet_jax.tools.probe --workdir=runs/cifar10_8 [--step=N|best] [--ema] \
      --data=folder:data/cats_dogs [--train_split=train --eval_split=validation] \
      [--layers=conv5,fc6,fc7] [--random_init] [--json=probe.json]

For each layer: its output after the activation (relu, or tanh in a tanh run), flattened, on the
centre crop of every image of both splits, read with the run's own data config (image size,
resize ratio) with only the data name and splits replaced. The probe standardises the features
with the train split's mean and std and fits a ridge regression onto one-vs-rest targets +-1
(the class: the argmax), solved through the smaller of the two Gram matrices (examples x
examples, or features x features). Its strength is chosen from --strengths by 5-fold
cross-validation on the train split alone (folds stratified and fixed; a tie goes to the stronger
ridge); the eval split is touched once, for the held-out top-1. --random_init probes the same
network freshly initialised (config.seed): the baseline a trained layer has to beat.

Prints one JSON object on stdout ({'workdir', 'step', 'random_init', 'data', 'train', 'eval',
'classes', 'layers': {name: {'top1', 'ridge', 'cv_top1', 'features'}}}); --json writes it to a
file too. Progress and a line per layer go to stderr. Default layers: the last three hidden ones.
Every image's features are held in memory (float32, images x width per layer; conv1 of a 224-px
AlexNet is 290,400 wide), and the probe's Gram matrices are images x images at most.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax import errors

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  import jax.numpy as jnp
  from alexnet_jax import inference
  from alexnet_jax import input_pipeline
  from alexnet_jax import metrics
  from alexnet_jax import model as model_lib

FLAGS = flags.FLAGS
FOLDS = 5
STRENGTHS = ('1', '10', '100', '1000', '10000', '100000')
DEFAULT_LAYERS = 3  # the last hidden layers probed when --layers is not given


def define_flags() -> None:
  cli.define_run_flags()
  flags.DEFINE_string('data', None, "The photos to probe with: 'folder:PATH' (train/<class>/ and "
                      "val/<class>/) or a prepared TFDS name; their classes need not be the run's.")
  flags.mark_flag_as_required('data')
  flags.DEFINE_string('train_split', 'train', 'The split the probe is fitted (and cross-validated) '
                      'on.')
  flags.DEFINE_string('eval_split', 'validation', 'The held-out split it is scored on.')
  flags.DEFINE_list('layers', [], 'Layers to probe (default: the last three hidden layers, '
                    'conv5,fc6,fc7 in AlexNet).')
  flags.DEFINE_bool('random_init', False, "The run's network freshly initialised (config.seed) "
                    'instead of its trained weights: the baseline.')
  flags.DEFINE_list('strengths', list(STRENGTHS), 'The ridge strengths cross-validation picks from.')
  flags.DEFINE_string('json', '', 'Also write the JSON object to this file.')


def layer_widths(model, params, image_size: int) -> dict:
  """{name: flattened output width} of the network's layers with parameters, in the order they
  run (the last one gives the logits); nothing is computed."""
  order = []  # eval_shape's output has its dicts' keys sorted: the call order is noted as traced

  def note(module, method):
    if module.name in params and method == '__call__' and module.name not in order:
      order.append(module.name)
    return module.name in params
  images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  _, state = jax.eval_shape(lambda p, x: model.apply(
      {'params': p}, x, capture_intermediates=note, mutable=['intermediates']), params, images)
  return {name: int(np.prod(state['intermediates'][name]['__call__'][0].shape[1:]))
          for name in order}


def initial_params(clf):
  """The run's network freshly initialised as training starts it (config.seed), replicated."""
  size = clf.config.data.image_size
  init = lambda: clf.model.init(jax.random.key(clf.config.seed),
                                jnp.zeros((1, size, size, 3), jnp.float32))['params']
  replicated = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(jax.local_devices()),
                                                            ('batch',)),
                                          jax.sharding.PartitionSpec())
  return jax.jit(init, out_shardings=replicated)()


def make_features(model, params, layers):
  """images [B, S, S, 3] uint8 -> {layer: float32 [B, F]}: each layer's output after the
  activation, flattened; the batch split over the local devices."""
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ('batch',))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))
  act = jnp.tanh if model.option('activation') == 'tanh' else jax.nn.relu
  wanted = frozenset(layers)

  def forward(params, images_BHWC):
    _, state = model.apply({'params': params}, model_lib.standardize(images_BHWC), train=False,
                           capture_intermediates=lambda module, _: module.name in wanted,
                           mutable=['intermediates'])
    found = state['intermediates']
    return {name: act(found[name]['__call__'][0]).reshape(images_BHWC.shape[0], -1).astype(
        jnp.float32) for name in layers}
  jitted = jax.jit(forward, out_shardings=sharding)

  def features(images_BHWC):
    count, devices = len(images_BHWC), mesh.devices.size
    padded = np.concatenate([images_BHWC, np.zeros(
        (-count % devices,) + images_BHWC.shape[1:], images_BHWC.dtype)])
    out = jitted(params, jax.device_put(padded, sharding))
    return {name: np.asarray(value)[:count] for name, value in out.items()}
  return features


def split_features(features, data_config, split: str, *, seed: int, num_classes: int,
                   total: int):
  """({layer: float32 [N, F]}, labels int [N]) of every image of a split, centre crops, in order."""
  data_config = data_config.copy_and_resolve_references()
  data_config.eval_split = split
  data_config.eval_crops = 1  # the centre crop, whatever the run evaluated with
  found, labels, start = {}, [], time.time()
  for batch in input_pipeline.create_eval_iterator(data_config, seed=seed, num_classes=num_classes):
    mask = np.asarray(batch['mask'], bool)
    for name, value in features(batch['image']).items():
      found.setdefault(name, []).append(value[mask])
    labels.append(batch['label'][mask])
    seen = sum(map(len, labels))
    rate = seen / max(time.time() - start, 1e-9)
    print(f'\rfeatures of {split}: {seen}/{total} images, {rate:.0f} images/s, ETA '
          f'{metrics.format_duration((total - seen) / rate)}', end='', file=sys.stderr, flush=True)
  print(file=sys.stderr)
  return {name: np.concatenate(values) for name, values in found.items()}, np.concatenate(labels)


def ridge_weights(x_NF, y_NK, strengths) -> list:
  """[(X^T X + s I)^-1 X^T Y for each strength s], [F, K] each, in x's dtype: from the
  eigendecomposition of the smaller Gram matrix, X X^T (dual: X^T (X X^T + s I)^-1 Y) or X^T X."""
  n, f = x_NF.shape
  if n <= f:
    values, vectors = np.linalg.eigh((x_NF @ x_NF.T).astype(np.float64))
    projected = vectors.T @ y_NK
    values = np.maximum(values, 0)[:, None]  # rounding can leave tiny negative ones
    return [x_NF.T @ (vectors @ (projected / (values + s))).astype(x_NF.dtype) for s in strengths]
  values, vectors = np.linalg.eigh((x_NF.T @ x_NF).astype(np.float64))
  projected = vectors.T @ (x_NF.T @ y_NK).astype(np.float64)
  values = np.maximum(values, 0)[:, None]
  return [(vectors @ (projected / (values + s))).astype(x_NF.dtype) for s in strengths]


def fit_predict(train_NF, labels_N, test_MF, num_classes: int, strengths) -> list:
  """Scores [M, K] of the test rows for each strength: features standardised with the train
  rows' mean and std (a column constant on them: centred only), one-vs-rest targets +-1, an
  unpenalised intercept (the targets' mean: the centred features have none)."""
  mean = train_NF.mean(axis=0)
  std = train_NF.std(axis=0)
  std[std == 0] = 1
  x_NF, t_MF = (train_NF - mean) / std, (test_MF - mean) / std
  y_NK = np.where(labels_N[:, None] == np.arange(num_classes), 1.0, -1.0)
  bias_K = y_NK.mean(axis=0)
  return [t_MF @ w_FK + bias_K for w_FK in ridge_weights(x_NF, y_NK - bias_K, strengths)]


def folds_of(labels_N, folds: int = FOLDS) -> np.ndarray:
  """The fold [N] of each example: each class's examples in a fixed shuffled order dealt round
  the folds in turn, so that every fold holds each class's share."""
  fold_N = np.zeros(len(labels_N), int)
  rng = np.random.default_rng(0)
  dealt = 0
  for label in np.unique(labels_N):
    members = rng.permutation(np.flatnonzero(labels_N == label))
    fold_N[members] = (dealt + np.arange(len(members))) % folds  # the next class goes on from here
    dealt += len(members)
  return fold_N


def cross_validate(train_NF, labels_N, num_classes: int, strengths, folds: int = FOLDS):
  """Top-1 [S] of each strength over the train rows, each row scored by the probe fitted on the
  folds that do not hold it."""
  fold_N = folds_of(labels_N, folds)
  correct = np.zeros(len(strengths))
  for fold in range(folds):
    held = fold_N == fold
    scores = fit_predict(train_NF[~held], labels_N[~held], train_NF[held], num_classes, strengths)
    correct += [np.sum(s.argmax(axis=1) == labels_N[held]) for s in scores]
  return correct / len(labels_N)


def probe(train_NF, train_labels, eval_MF, eval_labels, num_classes: int, strengths) -> dict:
  """{'top1' held out, 'ridge' (the strength cross-validation chose), 'cv_top1', 'features'}."""
  accuracy = cross_validate(train_NF, train_labels, num_classes, strengths)
  best = max(range(len(strengths)), key=lambda i: (accuracy[i], strengths[i]))  # ties: stronger
  scores, = fit_predict(train_NF, train_labels, eval_MF, num_classes, [strengths[best]])
  return {'top1': float(np.mean(scores.argmax(axis=1) == eval_labels)),
          'ridge': float(strengths[best]), 'cv_top1': float(accuracy[best]),
          'features': int(train_NF.shape[1])}


def chosen_layers(widths: dict, asked: list) -> list:
  """The layers to probe: those asked for, each a hidden layer, or the last DEFAULT_LAYERS."""
  hidden = list(widths)[:-1]  # the last one gives the logits
  unknown = [name for name in asked if name not in hidden]
  if unknown:
    raise errors.ConfigError(f'--layers: unknown layer {unknown[0]!r}; this network\'s hidden '
                             f'layers are {",".join(hidden)}.')
  return list(dict.fromkeys(asked)) or hidden[-DEFAULT_LAYERS:]


def probe_data_config(data_config, name: str, train_split: str, eval_split: str):
  """The run's data config reading `name`'s splits instead of its own."""
  if name == 'synthetic':
    raise errors.ConfigError("--data=synthetic has no photos of its own: give 'folder:PATH' or a "
                             'prepared TFDS name.')
  if name.startswith('folder:') and not os.path.isdir(name[len('folder:'):]):
    raise input_pipeline.DataError(f'--data={name}: no such folder; give a folder of train/<class>/ '
                                   'and val/<class>/ sub-folders.')
  data_config = data_config.copy_and_resolve_references()
  data_config.name, data_config.train_split, data_config.eval_split = name, train_split, eval_split
  return data_config


def probe_run(clf, data_name: str, *, train_split: str = 'train',
              eval_split: str = 'validation', layers=(), random_init: bool = False,
              strengths=tuple(map(float, STRENGTHS))) -> dict:
  """main's JSON object less 'workdir', of a loaded classifier: {'step', 'random_init', 'data',
  'train', 'eval', 'classes', 'layers': {name: probe()'s dict}}; strengths sorted and positive, as
  main parses --strengths. The tool's errors (errors.Error) are raised for cli.run to print."""
  config = clf.config
  layers = chosen_layers(layer_widths(clf.model, clf.params, config.data.image_size), list(layers))
  data = probe_data_config(config.data, data_name, train_split, eval_split)
  info = input_pipeline.get_dataset_info(data, num_classes=config.model.num_classes)
  if info.num_train_examples < FOLDS:
    raise input_pipeline.DataError(f'{data_name} split {train_split} holds '
                                   f'{info.num_train_examples} images: the probe\'s '
                                   f'{FOLDS}-fold cross-validation needs at least {FOLDS}.')
  params = initial_params(clf) if random_init else clf.params
  features = make_features(clf.model, params, layers)
  read = {split: split_features(features, data, split, seed=config.seed,
                                num_classes=config.model.num_classes, total=total)
          for split, total in ((data.train_split, info.num_train_examples),
                               (data.eval_split, info.num_eval_examples))}
  (train, train_labels), (held, held_labels) = read[data.train_split], read[data.eval_split]
  results = {}
  for name in layers:
    start = time.time()
    results[name] = probe(train[name], train_labels, held[name], held_labels, info.num_classes,
                          strengths)
    found = results[name]
    print(f'{name}: top-1 {found["top1"]:.4f} held out (cross-validated {found["cv_top1"]:.4f}, '
          f'ridge {found["ridge"]:g}, {found["features"]} features) in {time.time() - start:.1f} s',
          file=sys.stderr, flush=True)
  return {'step': clf.step, 'random_init': random_init, 'data': data_name,
          'train': int(len(train_labels)), 'eval': int(len(held_labels)),
          'classes': list(info.class_ids), 'layers': results}


def main(argv):
  cli.quiet_logs()
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}.')
  try:
    strengths = sorted(float(s) for s in FLAGS.strengths)
  except ValueError:
    cli.fail(f'--strengths={",".join(FLAGS.strengths)}: give positive numbers, e.g. 1,10,100.')
  if not strengths or strengths[0] <= 0:
    cli.fail(f'--strengths={",".join(FLAGS.strengths)}: give positive numbers, e.g. 1,10,100.')
  clf = inference.load(FLAGS.workdir, cli.step(), ema=FLAGS.ema)
  found = probe_run(clf, FLAGS.data, train_split=FLAGS.train_split, eval_split=FLAGS.eval_split,
                    layers=FLAGS.layers, random_init=FLAGS.random_init, strengths=strengths)
  record = {'workdir': FLAGS.workdir, **found}
  line = json.dumps(record)
  if FLAGS.json:
    with cli.output(FLAGS.json, '--json'):
      with open(FLAGS.json, 'w') as f:
        f.write(line + '\n')
    cli.wrote(FLAGS.json, f'{len(record["layers"])} layer(s) probed')
  print(line)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
