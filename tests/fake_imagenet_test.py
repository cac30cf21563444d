"""The generated ILSVRC2012 archives, read through TFDS's own imagenet2012 builder."""
import os
import tarfile

import numpy as np
import pytest

from alexnet_jax import data_sources, input_pipeline
from alexnet_jax import fake_imagenet
from configs import default

K, TRAIN, VAL = 3, 6, 2


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """Generated and prepared on first use by the pipeline itself, in the default folders."""
  cache = tmp_path_factory.mktemp('cache')
  config = default.get_config().data
  config.update(dict(name='imagenet2012', image_size=32, batch_size=4))
  config.fake_imagenet.update(dict(classes=K, train_per_class=TRAIN, val_per_class=VAL, image_px=40))
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(input_pipeline, 'FAKE_IMAGENET_CACHE', str(cache))
    info = input_pipeline.get_dataset_info(config, num_classes=1000)
    resolved = input_pipeline.with_fake_imagenet(config)
  assert not config.manual_dir and not config.data_dir  # the caller's config is left alone
  assert resolved.data_dir == str(
      cache / f'fake_imagenet_{K}c_{TRAIN}t_{VAL}v_40px_v{fake_imagenet.VERSION}' / 'tfds')
  assert info.num_train_examples == K * TRAIN
  resolved.fake_imagenet.classes = 0  # the folders are explicit from here on
  return resolved


def test_archives_have_the_ilsvrc2012_layout(prepared):
  synsets = fake_imagenet.synsets()
  with tarfile.open(f'{prepared.manual_dir}/ILSVRC2012_img_train.tar') as tar:
    assert tar.getnames() == [f'{s}.tar' for s in synsets[:K]]
  with tarfile.open(f'{prepared.manual_dir}/ILSVRC2012_img_val.tar') as tar:
    assert tar.getnames() == [f'ILSVRC2012_val_{i:08d}.JPEG' for i in range(1, K * VAL + 1)]


def test_tfds_builder_reads_the_labels_the_generator_drew(prepared):
  info = input_pipeline.get_dataset_info(prepared, num_classes=1000)
  assert (info.num_classes, info.num_train_examples, info.num_eval_examples) == (1000, K * TRAIN,
                                                                                K * VAL)
  train = data_sources.open_source(prepared, 'train')
  _, labels = train.records(np.arange(K * TRAIN))
  assert sorted(labels.numpy()) == sorted(list(range(K)) * TRAIN)
  synsets = fake_imagenet.synsets()
  expected = sorted(synsets.index(s) for s in fake_imagenet.synsets('validation_labels')[:K * VAL])
  _, labels = data_sources.open_source(prepared, 'validation').records(np.arange(K * VAL))
  assert sorted(labels.numpy()) == expected


def test_train_and_eval_iterators_over_the_prepared_set(prepared):
  batch = next(input_pipeline.create_train_iterator(prepared, seed=0, num_classes=1000))
  assert batch['image'].shape == (4, 32, 32, 3) and set(batch['label']) <= set(range(K))
  assert batch['image'].dtype == np.uint8 and batch['lighting'].shape == (4, 3)
  masks = [b['mask'] for b in input_pipeline.create_eval_iterator(prepared, seed=0, num_classes=1000)]
  assert sum(m.sum() for m in masks) == K * VAL


def test_ensure_prepared_is_a_no_op_when_done(prepared):
  stamp = os.path.getmtime(os.path.join(prepared.manual_dir, 'ILSVRC2012_img_train.tar'))
  fake_imagenet.ensure_prepared(prepared.manual_dir, prepared.data_dir, num_classes=K,
                                train_per_class=TRAIN, val_per_class=VAL, image_px=40)
  assert os.path.getmtime(os.path.join(prepared.manual_dir, 'ILSVRC2012_img_train.tar')) == stamp
  with pytest.raises(ValueError, match='other parameters'):
    fake_imagenet.ensure_prepared(prepared.manual_dir, prepared.data_dir, num_classes=K + 1)


def test_mean_colour_does_not_give_the_class_away():
  rng = np.random.default_rng(0)
  classes, per_class = 4, 60
  means = np.array([[fake_imagenet.draw_image(rng, c, 32, 32).mean((0, 1)) for _ in range(per_class)]
                    for c in range(classes)])
  centroids = means[:, :per_class // 2].mean(1)
  held_out = means[:, per_class // 2:].reshape(-1, 3)
  nearest = np.argmin(((held_out[:, None] - centroids[None]) ** 2).sum(-1), 1)
  accuracy = (nearest == np.repeat(np.arange(classes), per_class // 2)).mean()
  assert accuracy < 0.45  # chance is 0.25
