"""Bytes each collective moves per train step, and peak memory per device, from the compiled HLO.

  python -m alexnet_jax.tools.comm_report --config=configs/default.py --devices=8 \
      --config.mesh.data=1 --config.mesh.model=-1 [--json=PATH]

Compiles the train step exactly as train.py builds it, on abstract state (nothing is initialised),
for the config's mesh; on CPU --devices emulates that many devices. Per collective kind: the number
of ops, the payload per device (the buffer an all-reduce reduces, the array an all-gather builds,
the input of a reduce-scatter, the operand of an all-to-all or permute) and the bytes a ring
algorithm sends per device, (n-1)/n of the payload (twice that for an all-reduce) over a group of
n devices. Every device runs the same program: a step moves `devices` times the per-device bytes.
"""
from __future__ import annotations

import collections
import json
import os
import re

import numpy as np
from absl import flags
from etils import epy
from ml_collections import config_flags

from alexnet_jax import cli

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  import jax
  import jax.numpy as jnp
  from alexnet_jax import model as model_lib
  from alexnet_jax import optim
  from alexnet_jax import parallel
  from alexnet_jax import train_step

FLAGS = flags.FLAGS

KINDS = ('all-reduce', 'all-gather', 'reduce-scatter', 'all-to-all', 'collective-permute',
         'collective-broadcast')
DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f8e4m3fn': 1, 'f8e5m2': 1, 'bf16': 2, 'f16': 2,
               's16': 2, 'u16': 2, 'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8,
               'c64': 8, 'c128': 16}
_OP = re.compile(r'=\s*(?P<type>.*?)\s(?P<kind>' + '|'.join(KINDS) +
                 r')(?P<start>-start)?\((?P<operands>[^)]*)\)(?P<attrs>.*)$')
_SHAPE = re.compile(r'\b([a-z]+\d*(?:e\dm\d(?:fn)?)?)\[([\d,]*)\]')
_IOTA_GROUPS = re.compile(r'replica_groups=\[(\d+),(\d+)\]')
_LIST_GROUPS = re.compile(r'replica_groups=\{\{([\d,]*)\}')
_PAIRS = re.compile(r'source_target_pairs=')


def array_bytes(text: str) -> list[int]:
  """Bytes of each array shape in an HLO type string, in order (a tuple has several)."""
  sizes = []
  for dtype, dims in _SHAPE.findall(text):
    if dtype in DTYPE_BYTES:
      count = 1
      for d in filter(None, dims.split(',')):
        count *= int(d)
      sizes.append(count * DTYPE_BYTES[dtype])
  return sizes


def _group_size(attrs: str, num_devices: int) -> int:
  if match := _IOTA_GROUPS.search(attrs):
    return int(match.group(2))
  if match := _LIST_GROUPS.search(attrs):
    return len(match.group(1).split(',')) if match.group(1) else num_devices
  return 2 if _PAIRS.search(attrs) else num_devices  # a permute: pairs of devices


def _payload(kind: str, result_type: str, is_async_start: bool, group: int) -> int:
  """Per-device payload from the result type (compiled HLO does not print operand types)."""
  sizes = array_bytes(result_type)
  if is_async_start and kind in ('all-gather', 'collective-permute'):  # (operand, result, ...)
    return sizes[1] if kind == 'all-gather' else sizes[0]
  return sum(sizes) * (group if kind == 'reduce-scatter' else 1)


def collectives(hlo_text: str, num_devices: int) -> dict:
  """{kind: {'ops', 'payload_bytes', 'wire_bytes'}} per device, from compiled HLO text.

  Ops over groups of one device (the 'model' collectives of a pure data-parallel mesh) move
  nothing and are left out.
  """
  report = collections.defaultdict(lambda: dict(ops=0, payload_bytes=0, wire_bytes=0.0))
  for line in hlo_text.splitlines():
    match = _OP.search(line)
    if not match:
      continue
    kind, n = match['kind'], _group_size(match['attrs'], num_devices)
    if n <= 1:
      continue
    payload = _payload(kind, match['type'], bool(match['start']), n)
    factor = {'all-reduce': 2 * (n - 1) / n, 'collective-permute': 1.0,
              'collective-broadcast': 1.0}.get(kind, (n - 1) / n)
    entry = report[kind]
    entry['ops'] += 1
    entry['payload_bytes'] += payload
    entry['wire_bytes'] += factor * payload
  return dict(report)


def _forward_flops(model, params, image_size: int) -> float:
  images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)  # one device
  cost = jax.jit(model.apply).lower({'params': params}, images).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', 0.0))


def _batch_shapes(data_config, mesh) -> dict:
  """What every source feeds: uint8 images, labels and PCA lighting offsets (input_pipeline.py)."""
  on_batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(parallel.BATCH_AXES))
  batch, size = data_config.batch_size, data_config.image_size

  def shape(dims, dtype):
    return jax.ShapeDtypeStruct(dims, dtype, sharding=on_batch)
  return {'image': shape((batch, size, size, 3), np.uint8), 'label': shape((batch,), np.int32),
          'lighting': shape((batch, 3), np.float32)}


def _parameter_split(params) -> tuple[int, int, int]:
  """(all parameters, classifier parameters, classifier forward FLOPs per image)."""
  sizes = {jax.tree_util.keystr(path): int(np.prod(leaf.shape))
           for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  fc = {path: n for path, n in sizes.items() if 'fc' in path}
  return sum(sizes.values()), sum(fc.values()), 2 * sum(n for p, n in fc.items() if 'kernel' in p)


def build_report(config) -> dict:
  """Compiles the config's train step on its mesh and measures it."""

  mesh = parallel.make_mesh(config.mesh)
  batch, size = config.data.batch_size, config.data.image_size
  parallel.check_divisibility(mesh, batch_size=batch, num_classes=config.model.num_classes,
                              hidden=config.model.fc_width)
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=1000, total_steps=100_000)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = model_lib.build(config.model)
  ema_decay = config.optimizer.get('ema_decay', 0.0)
  state, specs = train_step.abstract_train_state(model, tx, mesh, image_size=size,
                                                 seed=config.seed, ema=ema_decay > 0)
  step = train_step.make_train_step(
      model, tx, mesh, specs, seed=config.seed, ema_decay=ema_decay,
      accumulate_steps=config.optimizer.get('accumulate_steps', 1))
  compiled = step.lower(state, _batch_shapes(config.data, mesh)).compile()
  memory = compiled.memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
          - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
  params, fc_params, fc_flops = _parameter_split(state.params)
  return dict(
      mesh=dict(mesh.shape), devices=int(mesh.devices.size), batch_size=batch, image_size=size,
      variant=config.model.variant, params=params, fc_params=fc_params,
      forward_flops_per_image=_forward_flops(model, state.params, size),
      fc_forward_flops_per_image=float(fc_flops),
      collectives=collectives(compiled.as_text(), int(mesh.devices.size)),
      peak_memory_bytes_per_device=int(peak),
      memory=dict(arguments=memory.argument_size_in_bytes, outputs=memory.output_size_in_bytes,
                  aliased=memory.alias_size_in_bytes, temporaries=memory.temp_size_in_bytes))


def format_report(report: dict) -> str:
  mb = 2.0 ** 20
  mesh = 'x'.join(str(v) for v in report['mesh'].values())
  fc_share = report['fc_params'] / report['params']
  conv_flops = 1 - report['fc_forward_flops_per_image'] / report['forward_flops_per_image']
  lines = [f"AlexNet {report['variant']}, {report['image_size']}px, global batch "
           f"{report['batch_size']}, mesh data x model = {mesh} ({report['devices']} devices)",
           f"parameters {report['params']:,} (classifier {fc_share:.1%}); forward FLOPs/image "
           f"{report['forward_flops_per_image'] / 1e9:.2f} G (convolutions {conv_flops:.1%})",
           f"{'collective':<20}{'ops':>5}{'payload MiB/dev':>17}{'ring MiB/dev':>14}"]
  for kind, entry in sorted(report['collectives'].items()):
    lines.append(f"{kind:<20}{entry['ops']:>5}{entry['payload_bytes'] / mb:>17.2f}"
                 f"{entry['wire_bytes'] / mb:>14.2f}")
  total = sum(e['wire_bytes'] for e in report['collectives'].values())
  lines.append(f"{'total':<20}{'':>5}{'':>17}{total / mb:>14.2f}   "
               f"(x{report['devices']} devices: {total * report['devices'] / mb:.1f} MiB per step)")
  lines.append(f"peak memory per device {report['peak_memory_bytes_per_device'] / mb:.1f} MiB")
  return '\n'.join(lines)


def main(argv):
  del argv
  # Read when jax initialises its backend (at the first jax.devices()), not at import; only the
  # CPU backend uses it: on accelerators the real devices count.
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' --xla_force_host_platform_device_count={FLAGS.devices}')
  report = build_report(FLAGS.config)
  print(format_report(report))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(report, f, indent=2)


def define_flags() -> None:
  """Command-line flags, defined only when run as a tool (tests import this module)."""
  config_flags.DEFINE_config_file('config', None, 'A configs/*.py file.', lock_config=True)
  flags.DEFINE_integer('devices', 8, 'CPU only: emulate this many devices (XLA_FLAGS).')
  flags.DEFINE_string('json', '', 'Also write the report to this JSON file.')
  flags.mark_flags_as_required(['config'])


if __name__ == '__main__':
  define_flags()
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
