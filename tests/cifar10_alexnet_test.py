"""configs/cifar10.py: the paper's AlexNet on CIFAR-10's photos upsampled to 64 px, on a folder of
them; model.conv1_kernel/conv1_stride/pooled_size, the knobs that fit it to other photo sizes."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import conftest
from alexnet_jax import checkpoint
from alexnet_jax import data_sources
from alexnet_jax import model as model_lib
from alexnet_jax import train
from configs import cifar10
from configs import finetune

sys.path.insert(0, os.path.join(conftest.REPO, 'launch'))
import cifar10 as launch_cifar10  # pylint: disable=g-import-not-at-top,wrong-import-position  # launch/cifar10.py

# By hand, from the layers (kernel x kernel x inputs per group x outputs + outputs):
HAND_COUNT = {
    'conv1': 11 * 11 * 3 * 96 + 96,
    'conv2': 5 * 5 * 48 * 256 + 256,  # two groups
    'conv3': 3 * 3 * 256 * 384 + 384,
    'conv4': 3 * 3 * 192 * 384 + 384,
    'conv5': 3 * 3 * 192 * 256 + 256,
    'fc6': 1 * 1 * 256 * 4096 + 4096,  # the 1x1x256 map left by the pools
    'fc7': 4096 * 4096 + 4096,
    'fc8': 4096 * 10 + 10,
}


def _counts_and_maps(model, size):
  """({layer: parameter count}, {convN: its output shape}) for a batch of 2 size-px images."""
  images = jnp.zeros((2, size, size, 3))
  params = jax.eval_shape(model.init, jax.random.key(0), images[:1])['params']
  _, state = jax.eval_shape(lambda p, x: model.apply(
      {'params': p}, x, capture_intermediates=lambda m, _: (m.name or '').startswith('conv'),
      mutable=['intermediates']), params, images)
  return ({layer: model_lib.count_params(tree) for layer, tree in params.items()},
          {k: v['__call__'][0].shape for k, v in state['intermediates'].items()})


def test_cifar10_alexnet_is_the_papers_network_on_upsampled_photos():
  """64-px inputs: conv1's 11x11 stride 4 gives 15x15 maps, then 7x7, 3x3 and 1x1 for FC6."""
  config = cifar10.get_config()
  counts, maps = _counts_and_maps(model_lib.build(config.model), config.data.image_size)
  assert counts == HAND_COUNT and sum(counts.values()) == 20_209_034
  assert maps == {'conv1': (2, 15, 15, 96), 'conv2': (2, 7, 7, 256), 'conv3': (2, 3, 3, 384),
                  'conv4': (2, 3, 3, 384), 'conv5': (2, 3, 3, 256)}


def test_conv1_knobs_fit_the_first_layer_to_32px_photos():
  """The alternative measured against it: conv1 5x5 stride 2 (padding 2) on the 32-px photos."""
  model = model_lib.build({**cifar10.get_config().model, 'conv1_kernel': 5, 'conv1_stride': 2})
  counts, maps = _counts_and_maps(model, 32)
  assert counts == {**HAND_COUNT, 'conv1': 5 * 5 * 3 * 96 + 96}
  assert sum(counts.values()) == 20_181_386
  assert maps['conv1'] == (2, 16, 16, 96) and maps['conv5'] == (2, 3, 3, 256)


def test_imagenet_alexnet_is_unchanged_by_the_knobs_defaults():
  params = jax.eval_shape(model_lib.AlexNet().init, jax.random.key(0),
                          jnp.zeros((1, 224, 224, 3)))['params']
  assert params['conv1']['kernel'].shape == (11, 11, 3, 96)
  assert params['fc6']['kernel'].shape == (6 * 6 * 256, 4096)


@pytest.mark.parametrize('key,value,match', [
    ('conv1_kernel', -1, 'conv1_kernel=-1 is out of range'),
    ('pooled_size', 0, 'pooled_size=0 is out of range')])
def test_bad_knob_values_are_clear_errors(key, value, match):
  with pytest.raises(ValueError, match=match):
    model_lib.AlexNet(**{key: value}).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_the_cifar_nets_refuse_alexnets_conv1_knobs():
  with pytest.raises(ValueError, match="conv1_kernel, conv1_stride and pooled_size are AlexNet's"):
    model_lib.build(dict(variant='cifar18pct', conv1_kernel=5)).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_cifar10_config_trains_and_evaluates_10_crops_then_fine_tunes_on_cats_and_dogs(tmp_path):
  """configs/cifar10.py's model and pipeline (32-px photos upsampled to 64), a few steps; then
  launch/cifar10.py's cats-and-dogs flow: configs/finetune.py with its overrides, from that run.
  The runs' FC6/FC7 are 64 wide, not 4096 (a sixtieth of the parameters to initialise, save and
  load); that the overrides give the 4096-wide network's shapes is checked on the shapes."""
  photos = str(tmp_path / 'photos')
  conftest.write_photos(os.path.join(photos, 'train'), classes={
      'airplane': 10, 'cat': 10, 'dog': 10, 'frog': 10}, size=(32, 32))
  config = cifar10.get_config()
  config.update_from_flattened_dict({
      'data.name': f'folder:{photos}', 'data.data_dir': str(tmp_path / 'tfds'),
      'model.num_classes': 4, 'model.fc_width': 64, 'data.batch_size': 8, 'total_steps': 2,
      'log_every_steps': 1, 'data.eval_crops': 10, 'optimizer.warmup_steps': 2})
  metrics = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert metrics['count'] == 4  # train[90%:] of 40 photos
  assert np.isfinite(metrics['loss']) and 0 <= metrics['top1'] <= 1
  records = conftest.metrics_records(str(tmp_path / 'run'))
  assert [r['step'] for r in records if r['split'] == 'train'] == [1, 2]

  # The cats and dogs: train/ from the run's training split, val/ its held-out photos, no overlap.
  eight, catdog = launch_cifar10.transfer_folders(photos, str(tmp_path / 'derived'))
  _, files = data_sources._folder_split(photos, 'train[90%:]')  # pylint: disable=protected-access
  held_out = {os.path.realpath(p) for p, _ in files}
  listed = lambda split: {os.path.realpath(os.path.join(catdog, split, c, f))
                          for c in ('cat', 'dog') for f in os.listdir(os.path.join(catdog, split, c))}
  assert listed('val') == {p for p in held_out if os.path.basename(os.path.dirname(p)) in
                           ('cat', 'dog')}
  assert len(listed('train')) == 20 - len(listed('val')) and not listed('train') & held_out
  assert sorted(os.listdir(os.path.join(eight, 'train'))) == ['airplane', 'frog']
  tuned = finetune.get_config()
  _, overrides = launch_cifar10.transfer_commands(eight, catdog, str(tmp_path / 'run'))['finetune']
  tuned.update_from_flattened_dict({k.removeprefix('config.'): v for k, v in overrides.items()})
  # The overrides make configs/finetune.py configs/cifar10.py's network: every parameter's shape
  # is the pretrained run's but FC8's, new for the 2 classes.
  shapes = lambda c: jax.tree.map(lambda x: x.shape, jax.eval_shape(
      model_lib.build(c.model).init, jax.random.key(0),
      jnp.zeros((1, c.data.image_size, c.data.image_size, 3)))['params'])
  pretrained_shapes, tuned_shapes = shapes(cifar10.get_config()), shapes(tuned)
  assert tuned.data.image_size == cifar10.get_config().data.image_size
  assert {**tuned_shapes, 'fc8': None} == {**pretrained_shapes, 'fc8': None}
  assert tuned_shapes['fc8']['kernel'] == (4096, 2)
  tuned.update_from_flattened_dict({'data.data_dir': str(tmp_path / 'tfds'), 'data.batch_size': 8,
                                    'total_steps': 2, 'log_every_steps': 1, 'eval_every_steps': 0,
                                    'model.fc_width': 64})
  metrics = train.train_and_evaluate(tuned, str(tmp_path / 'tuned'))
  assert metrics['count'] == len(listed('val'))
  pretrained, _, _ = checkpoint.load_params(str(tmp_path / 'run'))
  params, _, _ = checkpoint.load_params(str(tmp_path / 'tuned'))
  # Only the classifier trains (configs/finetune.py): conv1 is the pretrained run's; FC8 is new.
  np.testing.assert_array_equal(params['conv1']['kernel'], pretrained['conv1']['kernel'])
  assert params['fc8']['kernel'].shape == (64, 2)
