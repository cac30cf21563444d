"""The device mesh ('data', 'model'), parameter and batch shardings, host batches -> global arrays
(prefetched in a background thread)."""
import queue
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax import errors

DATA_AXIS = 'data'
MODEL_AXIS = 'model'
BATCH_AXES = (DATA_AXIS, MODEL_AXIS)  # the batch is split over every device
# Classifier parameters split over 'model' ("One weird trick", Krizhevsky 2014): FC6 and FC8 by
# output columns, FC7 by input rows. Everything else is replicated.
_MODEL_SPLIT_SPECS = {
    ('fc6', 'kernel'): P(None, MODEL_AXIS), ('fc6', 'bias'): P(MODEL_AXIS),
    ('fc7', 'kernel'): P(MODEL_AXIS, None),
    ('fc8', 'kernel'): P(None, MODEL_AXIS), ('fc8', 'bias'): P(MODEL_AXIS),
}


class MeshError(errors.Error, ValueError):
  """A mesh, batch or layer size that does not fit the devices."""


def mesh_shape(data: int, model: int, num_devices: int) -> tuple[int, int]:
  """Resolves -1 (the remaining devices) and checks that data x model uses every device."""
  if data == -1 and model == -1:
    raise MeshError('mesh.data and mesh.model are both -1; set one of them.')
  if model == -1:
    model, data = num_devices // max(data, 1), data
  elif data == -1:
    data = num_devices // max(model, 1)
  if data < 1 or model < 1 or data * model != num_devices:
    raise MeshError(f'mesh {data}x{model} (mesh.data x mesh.model) does not fit the {num_devices} '
                    f'devices; choose sizes whose product is {num_devices} (-1 fills one in).')
  return data, model


def make_mesh(mesh_config, devices=None) -> jax.sharding.Mesh:
  """Mesh over all devices of all processes (or the given ones) with axes ('data', 'model')."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_config.data, mesh_config.model, len(devices))
  return jax.make_mesh(shape, (DATA_AXIS, MODEL_AXIS), (jax.sharding.AxisType.Auto,) * 2,
                       devices=devices)


def check_divisibility(mesh, *, batch_size: int, num_classes: int, hidden: int) -> None:
  """Raises MeshError naming the key to change when the batch or a layer does not split."""
  num_devices, model = mesh.devices.size, mesh.shape[MODEL_AXIS]
  if batch_size % num_devices:
    raise MeshError(f'data.batch_size={batch_size} is not divisible by the {num_devices} devices '
                    f'of the mesh; use a multiple of {num_devices}.')
  for name, width in (('model.num_classes', num_classes), ('the FC width', hidden)):
    if width % model:
      raise MeshError(f'{name}={width} is not divisible by mesh.model={model}; choose a '
                      f'mesh.model that divides it.')


def param_specs(params):
  """PartitionSpec per parameter: the classifier split over 'model', the rest replicated."""
  def spec(path, _):
    keys = tuple(getattr(k, 'key', getattr(k, 'name', None)) for k in path)
    return _MODEL_SPLIT_SPECS.get(keys[-2:], P())
  return jax.tree_util.tree_map_with_path(spec, params)


def to_shardings(mesh, specs):
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def global_batch(mesh, local_batch: dict) -> dict:
  """This process's numpy batch -> global jax.Arrays, batch axis split over every device."""
  sharding = NamedSharding(mesh, P(BATCH_AXES))
  count = jax.process_count()

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, (x.shape[0] * count,) + x.shape[1:])
  return {k: put(v) for k, v in local_batch.items()}


def host_to_mesh(tree, mesh, specs):
  """Host (numpy) arrays -> global arrays on the mesh, placed by specs (a tree of P).

  Every process passes the same values and keeps only the shards of its own devices.
  """
  return jax.tree.map(lambda x, spec: jax.make_array_from_callback(
      x.shape, NamedSharding(mesh, spec), lambda index, x=x: np.asarray(x)[index]), tree, specs)


def prefetch(batches, mesh, size: int = 2):
  """Moves host batches onto the mesh in a background thread, `size` steps ahead.

  Closing the generator (or its end) stops and joins the thread: no producer outlives the loop.
  """
  slots = queue.Queue(maxsize=size)
  stop = threading.Event()
  done = object()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        slots.put(item, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def produce():
    try:
      for batch in batches:
        if not put(global_batch(mesh, batch)):
          return
    except Exception as e:  # pylint: disable=broad-except  # re-raised in the consumer
      put(e)
    put(done)

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while (item := slots.get()) is not done:
      if isinstance(item, Exception):
        raise item
      yield item
  finally:
    stop.set()
    thread.join()


def everywhere(ok: bool) -> bool:
  """True if ok on every process: they all take the same decision."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))
