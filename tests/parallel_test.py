"""Mesh shapes, divisibility errors, parameter specs, global batches and their prefetch thread."""
import threading

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from alexnet_jax import parallel
from alexnet_jax.model import AlexNet


@pytest.mark.parametrize('data, model, want', [(-1, 1, (8, 1)), (-1, 2, (4, 2)), (2, -1, (2, 4)),
                                               (1, 8, (1, 8))])
def test_minus_one_fills_the_remaining_devices(data, model, want):
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=data, model=model)))
  assert (mesh.shape['data'], mesh.shape['model']) == want


@pytest.mark.parametrize('data, model', [(16, 1), (3, -1), (-1, 3), (-1, -1), (4, 4)])
def test_a_mesh_that_does_not_fit_is_a_clear_error(data, model):
  with pytest.raises(parallel.MeshError, match='mesh'):
    parallel.make_mesh(ml_collections.ConfigDict(dict(data=data, model=model)))


def test_batch_and_layer_widths_must_divide():
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=2, model=4)))
  with pytest.raises(parallel.MeshError, match='data.batch_size=12'):
    parallel.check_divisibility(mesh, batch_size=12, num_classes=8, hidden=64)
  with pytest.raises(parallel.MeshError, match='model.num_classes=10'):
    parallel.check_divisibility(mesh, batch_size=16, num_classes=10, hidden=64)
  with pytest.raises(parallel.MeshError, match='FC width'):
    parallel.check_divisibility(mesh, batch_size=16, num_classes=8, hidden=66)
  parallel.check_divisibility(mesh, batch_size=16, num_classes=8, hidden=64)


def test_only_the_classifier_is_split_over_model():
  params = jax.eval_shape(lambda: AlexNet(num_classes=8, fc_width=64).init(
      jax.random.key(0), jax.numpy.zeros((1, 64, 64, 3))))['params']
  specs = parallel.param_specs(params)
  assert specs['fc6'] == {'kernel': P(None, 'model'), 'bias': P('model')}
  assert specs['fc7'] == {'kernel': P('model', None), 'bias': P()}
  assert specs['fc8'] == {'kernel': P(None, 'model'), 'bias': P('model')}
  assert all(s == P() for name in ('conv1', 'conv5') for s in specs[name].values())


def test_global_batch_is_split_over_every_device_in_order():
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=4, model=2)))
  labels = np.arange(16, dtype=np.int32)
  batch = parallel.global_batch(mesh, {'label': labels})
  assert batch['label'].shape == (16,)
  shards = sorted(batch['label'].addressable_shards, key=lambda s: s.index[0].start)
  assert [s.data.shape[0] for s in shards] == [2] * 8
  np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]), labels)


def _new_threads(before):
  return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_prefetch_reraises_the_producers_error_and_joins_its_thread():
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=1, model=1)), jax.devices()[:1])

  def batches():
    yield {'x': np.zeros((2, 3), np.float32)}
    raise OSError('disk gone')
  before = threading.enumerate()
  stream = parallel.prefetch(batches(), mesh)
  assert next(stream)['x'].shape == (2, 3)
  with pytest.raises(OSError, match='disk gone'):
    next(stream)
  assert not _new_threads(before)


def test_prefetch_closed_early_stops_and_joins_its_thread():
  mesh = parallel.make_mesh(ml_collections.ConfigDict(dict(data=1, model=1)), jax.devices()[:1])
  endless = iter(lambda: {'x': np.zeros((2, 3), np.float32)}, None)
  before = threading.enumerate()
  stream = parallel.prefetch(endless, mesh)
  next(stream)
  assert len(_new_threads(before)) == 1  # the producer, blocked on the full queue
  stream.close()
  assert not _new_threads(before)
