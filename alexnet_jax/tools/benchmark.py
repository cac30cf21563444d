"""Images/s of this project's train and eval steps beside PyTorch's AlexNet on one CPU, one run.

  python -m alexnet_jax.tools.benchmark [--batch 64] [--forward_batch 128] [--image_size 224]
      [--modes train,train_bf16,forward] [--steps 5] [--rounds 5] [--json PATH]
  python -m alexnet_jax.tools.benchmark --network=cifar18pct --modes=train,forward

Both run torchvision's AlexNet layout (61,100,840 parameters) on one fixed batch of uint8 pixels,
one mode after another. --network=cifar18pct | cifar_conv_local runs cuda-convnet's CIFAR-10
network instead: the JAX side as its config builds it (configs/cifar10_*.py, batch 128, its
optimizer), the PyTorch side its torch.nn twin (tools/torch_nets.py, tested to give the same
logits); no MFU row (the matmul peak says little about these small layers). 'train': the fp32 train step as the CLI builds it (jit(shard_map), donated
state, 1x1 mesh of the default CPU device, all cores; alexnet_jax.xla_flags, which XLA_FLAGS from
the caller override) against a PyTorch model + SGD step (momentum 0.9, the same weight decay, all
cores). 'train_bf16': model.dtype=bfloat16 against torch.autocast('cpu', dtype=torch.bfloat16).
'forward': the eval step (fp32, --forward_batch) against a no_grad forward. Each framework is a
worker process (tools/workers.py), taking turns of --steps steps, the order swapped every round;
figures are medians over rounds, the ratio that of the rounds' ratios. MFU (train): training FLOP/s
over a jitted fp32 4096^2 matmul's (--matmul_size). First steps count from the worker's launch; the
JAX workers share a fresh compilation cache, and for 'train' a second worker of each, started after
the first, gives the warm start.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time

import functools

import numpy as np
from absl import flags
from etils import epy

from alexnet_jax import cli
from alexnet_jax.tools import workers

with epy.lazy_imports():  # loaded at their first use: --help answers before JAX's import
  from alexnet_jax import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_enum('network', 'alexnet', ['alexnet', 'cifar18pct', 'cifar_conv_local'],
                  'AlexNet (torchvision layout) or one of cuda-convnet\'s CIFAR-10 networks.')
flags.DEFINE_integer('batch', None, 'Global batch size of the train rows (default: 64 for AlexNet, '
                     'the config\'s 128 for the CIFAR-10 networks).')
flags.DEFINE_integer('forward_batch', 128, 'Global batch size of the forward row.')
flags.DEFINE_integer('image_size', None, 'Input height and width (default: 224 for AlexNet, the '
                     'network\'s own for the CIFAR-10 networks).')
flags.DEFINE_integer('steps', 5, 'Timed steps per round and framework.')
flags.DEFINE_integer('rounds', 5, 'Alternating rounds; the table gives medians.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps after the first one.')
flags.DEFINE_string('json', '', 'Also write the results to this JSON file.')
flags.DEFINE_integer('matmul_size', 4096, 'Side of the jitted fp32 square matmul that gives the '
                     'peak FLOP/s of MFU (train, AlexNet).')
flags.DEFINE_list('frameworks', ['jax', 'torch'], 'Which of jax, torch to run.')
flags.DEFINE_list('modes', ['train', 'train_bf16', 'forward'], 'Rows, in this order.')
flags.DEFINE_string('worker', '', 'Internal: serve as this framework\'s worker process.')
flags.DEFINE_string('mode', 'train', 'Internal: the worker\'s mode.')
flags.DEFINE_float('started', 0.0, 'Internal: time.time() at the worker\'s launch.')
flags.DEFINE_string('cache_dir', '', 'Internal: the JAX worker\'s compilation cache folder.')

MODES = ('train', 'train_bf16', 'forward')
NUM_CLASSES = 1000


def convs() -> tuple:
  """torchvision AlexNet's conv layers: the model's own layer table."""
  return model_lib.CONVS['torchvision']


@functools.cache
def dense() -> tuple:
  """(fan in, fan out) of fc6, fc7, fc8."""
  return ((convs()[-1].features * model_lib.POOLED_SIZE**2, model_lib.HIDDEN),
          (model_lib.HIDDEN, model_lib.HIDDEN), (model_lib.HIDDEN, NUM_CLASSES))


CIFAR_CONFIGS = {'cifar18pct': 'cifar10_18pct', 'cifar_conv_local': 'cifar10_conv_local'}


def _network_config():
  """The config of --network: the default config's torchvision AlexNet, or the CIFAR-10 config."""
  if FLAGS.network == 'alexnet':
    config = cli.load_config_file('default')
    config.model.variant = 'torchvision'
    return config
  return cli.load_config_file(CIFAR_CONFIGS[FLAGS.network])


def _batch(mode: str) -> int:
  if mode == 'forward':
    return FLAGS.forward_batch
  return FLAGS.batch or (64 if FLAGS.network == 'alexnet' else
                         cli.load_config_file(CIFAR_CONFIGS[FLAGS.network]).data.batch_size)


def _image_size() -> int:
  from alexnet_jax import cifar_nets  # pylint: disable=g-import-not-at-top
  return FLAGS.image_size or cifar_nets.IMAGE_SIZE.get(FLAGS.network, 224)


def train_flops_per_image(image_size: int) -> float:
  """2 x multiply-adds of forward, weight gradient and input gradient (none for the images)."""
  size, channels, flops = image_size, 3, 0.0
  for i, layer in enumerate(convs()):
    size = (size + 2 * layer.padding - layer.kernel) // layer.stride + 1
    flops += 2 * size**2 * layer.features * layer.kernel**2 * channels * (2 if i == 0 else 3)
    size, channels = ((size - 3) // 2 + 1 if layer.pool else size), layer.features
  return flops + sum(2 * 3 * fan_in * fan_out for fan_in, fan_out in dense())


def _synthetic(batch: int, image_size: int, num_classes: int = NUM_CLASSES) -> dict:
  """One fixed batch as the input pipeline ships it: uint8 pixels, int32 labels."""
  rng = np.random.default_rng(0)
  return {'image': rng.integers(0, 256, (batch, image_size, image_size, 3), np.uint8),
          'label': rng.integers(0, num_classes, batch).astype(np.int32)}


def jax_worker(batch: int, image_size: int, mode: str):
  """(run(steps), matmul() or None, info): the CLI's train or eval step on a 1x1 mesh."""
  # pylint: disable=g-import-not-at-top
  from alexnet_jax import xla_flags
  xla_flags.apply()  # before jax initialises its backend (imports alone do not)
  import jax
  from alexnet_jax import compile_cache, optim, parallel, train_step as step_lib

  os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)  # cold and warm: this run's own fresh cache
  compile_cache.enable(FLAGS.cache_dir)
  config = _network_config()
  config.mesh.data = 1  # the 1x1 mesh of one device
  config.model.dtype = 'bfloat16' if mode == 'train_bf16' else 'float32'
  mesh = parallel.make_mesh(config.mesh, devices=jax.devices()[:1])
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=10_000, total_steps=10**6)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = model_lib.build(config.model)
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=image_size,
                                             seed=config.seed)
  host = _synthetic(batch, image_size, config.model.num_classes)
  if mode == 'forward':
    evaluate = step_lib.make_eval_step(model, mesh, specs.params)
    data = parallel.global_batch(mesh, dict(host, mask=host['label'] >= 0))
    step = lambda state, data: (state, evaluate(state.params, data))
  else:
    step = step_lib.make_train_step(model, tx, mesh, specs, seed=config.seed)
    data = parallel.global_batch(mesh, dict(host, lighting=np.zeros((batch, 3), np.float32)))
  holder = [state]

  def run(steps: int):  # dispatch only; one wait at the end
    state, metrics = holder[0], None
    for _ in range(steps):
      state, metrics = step(state, data)
    holder[0] = jax.block_until_ready((state, metrics))[0]

  run(1)
  info = dict(first_step_s=time.time() - FLAGS.started, version=jax.__version__,
              params=model_lib.count_params(holder[0].params),
              xla_flags=os.environ.get('XLA_FLAGS', ''), cache=compile_cache.stats())
  if mode != 'train' or FLAGS.network != 'alexnet':
    return run, None, info
  a = jax.random.normal(jax.random.key(0), (FLAGS.matmul_size,) * 2, 'float32')
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  return run, lambda: matmul(a).block_until_ready(), info


def torch_alexnet(torch):
  """torchvision.models.alexnet's layout in plain torch.nn (torchvision is not installable here)."""
  nn, layers, channels = torch.nn, [], 3
  for layer in convs():
    layers += [nn.Conv2d(channels, layer.features, layer.kernel, layer.stride, layer.padding),
               nn.ReLU(inplace=True)] + ([nn.MaxPool2d(3, 2)] if layer.pool else [])
    channels = layer.features
  layers += [nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten()]
  for i, (fan_in, fan_out) in enumerate(dense()):
    layers += [nn.Dropout(0.5)] if i < 2 else []
    layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU(inplace=True)] if i < 2 else [])
  return nn.Sequential(*layers)


def torch_worker(batch: int, image_size: int, mode: str):
  """(run(steps), None, info): PyTorch's model + SGD step (or no_grad forward), all cores."""
  # pylint: disable=g-import-not-at-top
  import torch
  torch.set_num_threads(os.cpu_count())
  from alexnet_jax.tools import torch_nets  # pylint: disable=g-import-not-at-top
  config = _network_config()
  opt_config = config.optimizer
  torch.manual_seed(0)
  model = (torch_alexnet(torch) if FLAGS.network == 'alexnet' else
           torch_nets.cifar_net(torch, FLAGS.network, config.model.num_classes))
  model.train(mode != 'forward')
  opt = torch.optim.SGD(model.parameters(), lr=opt_config.learning_rate,
                        momentum=opt_config.momentum, weight_decay=opt_config.weight_decay)
  host = _synthetic(batch, image_size, config.model.num_classes)
  mean, std = (torch.tensor(v) for v in (model_lib.IMAGENET_MEAN_RGB, model_lib.IMAGENET_STD_RGB))
  x = (torch.from_numpy(host['image']) / 255.0 - mean) / std
  if FLAGS.network != 'alexnet':  # CifarNet's own first operation: back to 0..255, mean removed
    x = x * std * 255.0
  x = x.permute(0, 3, 1, 2).contiguous()
  y = torch.from_numpy(host['label']).long()
  precision = torch.autocast('cpu', dtype=torch.bfloat16, enabled=mode == 'train_bf16')

  def run(steps: int):
    for _ in range(steps):
      if mode == 'forward':
        with torch.no_grad():
          model(x)
        continue
      opt.zero_grad(set_to_none=True)
      with precision:
        loss = torch.nn.functional.cross_entropy(model(x), y)
      loss.backward()
      opt.step()

  run(1)
  info = dict(first_step_s=time.time() - FLAGS.started, version=torch.__version__,
              params=sum(p.numel() for p in model.parameters()), threads=torch.get_num_threads())
  return run, None, info


def _setup():
  """The worker's (info, handle): 'run N' | 'matmul' -> wall and CPU seconds."""
  run, matmul, info = (jax_worker if FLAGS.worker == 'jax' else torch_worker)(
      _batch(FLAGS.mode), _image_size(), FLAGS.mode)
  run(FLAGS.warmup)
  return info, lambda command: workers.timed(
      *((run, int(command[1])) if command[0] == 'run' else (matmul,)))


def _start(name: str, mode: str, cache_dir: str, warmup: int) -> workers.Worker:
  return workers.Worker(name, 'alexnet_jax.tools.benchmark', (
      f'--network={FLAGS.network}', f'--batch={_batch("train")}',
      f'--forward_batch={FLAGS.forward_batch}', f'--mode={mode}',
      f'--image_size={_image_size()}', f'--warmup={warmup}', f'--cache_dir={cache_dir}',
      f'--matmul_size={FLAGS.matmul_size}'))


def measure(frameworks, mode: str, cache_dir: str):
  """Alternating rounds of one mode: ({name: [timings per round]}, {name: worker info})."""
  running = {name: _start(name, mode, cache_dir, FLAGS.warmup) for name in frameworks}
  times = {name: [] for name in frameworks + ['matmul']}
  try:
    if mode == 'train':  # a second start of each, once the first has compiled: the warm start
      for name in frameworks:
        probe = _start(name, mode, cache_dir, warmup=0)
        running[name].info.update(first_step_warm_s=probe.info['first_step_s'],
                                  cache_warm=probe.info.get('cache'))
        probe.close()
    for r in range(FLAGS.rounds):
      for name in (frameworks if r % 2 == 0 else frameworks[::-1]):
        times[name].append(running[name].ask(f'run {FLAGS.steps}'))
      if 'jax' in running and mode == 'train' and FLAGS.network == 'alexnet':
        times['matmul'].append(running['jax'].ask('matmul'))
  finally:
    infos = {name: dict(w.info, **w.close()) for name, w in running.items()}
  return times, infos


def summarise(mode: str, times, infos) -> dict:
  """One row: images/s, step time, MFU, ratio (medians over rounds) and each worker's figures."""
  batch = _batch(mode)
  result = dict(batch=batch)
  if times['matmul']:
    result['matmul_gflops'] = max(  # a peak: the least disturbed round
        2 * FLAGS.matmul_size ** 3 / t['seconds'] for t in times['matmul']) / 1e9
  for name, info in infos.items():
    images = batch * FLAGS.steps
    rates = [images / t['seconds'] for t in times[name]]
    result[name] = dict(info, images_per_sec=statistics.median(rates), images_per_sec_rounds=rates,
                        step_ms=1e3 * batch / statistics.median(rates),
                        cpu_ms_per_image=1e3 * statistics.median(
                            t['cpu_seconds'] / images for t in times[name]))
    if 'matmul_gflops' in result:
      result[name]['mfu'] = (result[name]['images_per_sec'] * train_flops_per_image(
          _image_size()) / 1e9 / result['matmul_gflops'])
  if 'jax' in infos and 'torch' in infos:
    ratios = [j / t for j, t in zip(result['jax']['images_per_sec_rounds'],
                                    result['torch']['images_per_sec_rounds'])]
    result.update(ratio=statistics.median(ratios), ratio_rounds=ratios, cpu_time_ratio=(
        result['torch']['cpu_ms_per_image'] / result['jax']['cpu_ms_per_image']))
  return result


_TITLES = {'train': 'train fp32', 'train_bf16': 'train bf16', 'forward': 'forward fp32'}
_FIGURES = (('images/s (median)', 'images_per_sec', '{:.1f}'), ('step (ms)', 'step_ms', '{:.0f}'),
            ('CPU time / image (ms)', 'cpu_ms_per_image', '{:.1f}'), ('MFU', 'mfu', '{:.1%}'),
            ('first step, cold (s)', 'first_step_s', '{:.1f}'),
            ('first step, warm (s)', 'first_step_warm_s', '{:.1f}'),
            ('peak RSS (MiB)', 'peak_rss_mib', '{:.0f}'))


def table(result: dict) -> str:
  """Figures down, (mode, framework) across; ratios under the figures."""
  rows = result['rows']
  columns = [(mode, n) for mode in rows for n in ('jax', 'torch') if n in rows[mode]]
  version = {n: rows[m][n]['version'] for m, n in columns}
  name = ('AlexNet (torchvision layout)' if result.get('network', 'alexnet') == 'alexnet' else
          f"{result['network']} (cuda-convnet's CIFAR-10 network)")
  lines = [f"{name}, {result['image_size']}x{result['image_size']}, "
           f"{result['rounds']} rounds x {result['steps']} steps; {result['cpu']}, "
           f"{result['cores']} cores; JAX {version.get('jax', '-')}, "
           f"PyTorch {version.get('torch', '-')}",
           f"{'':24}" + ''.join(f"{_TITLES[m] + ' b' + str(rows[m]['batch']):>26}" for m in rows),
           f"{'':24}" + ''.join(f"{'JAX' if n == 'jax' else 'PyTorch':>13}" for _, n in columns)]
  for label, key, fmt in _FIGURES:
    cells = [fmt.format(rows[m][n][key]) if key in rows[m][n] else '-' for m, n in columns]
    lines.append(f'{label:24}' + ''.join(f'{c:>13}' for c in cells))
  for mode, row in rows.items():
    if 'ratio' in row:
      spread = row['ratio_rounds']
      lines.append(f"{_TITLES[mode]}: JAX / PyTorch images/s {row['ratio']:.3f} (median of rounds; "
                   f"{min(spread):.3f}-{max(spread):.3f}); by CPU time per image "
                   f"{row['cpu_time_ratio']:.3f}")
  if 'matmul_gflops' in rows.get('train', {}):
    lines.append(f"matmul peak: {rows['train']['matmul_gflops']:.0f} GFLOP/s (jitted fp32 "
                 f"{result['matmul_size']}^2); train: {result['train_gflop_per_image']:.2f} "
                 "GFLOP/image")
  xla = [row['jax']['xla_flags'] for row in rows.values() if 'jax' in row]
  lines += [f'XLA_FLAGS: {xla[0]}'] if xla else []
  return '\n'.join(lines)


def run_all() -> dict:
  """Every mode in turn; the JAX workers share a fresh compilation cache, deleted at the end."""
  result = dict(network=FLAGS.network, image_size=_image_size(), steps=FLAGS.steps,
                rounds=FLAGS.rounds, cpu=workers.cpu_name(), cores=os.cpu_count(),
                load_average=os.getloadavg(), rows={})
  if FLAGS.network == 'alexnet':
    result['train_gflop_per_image'] = train_flops_per_image(_image_size()) / 1e9
    result['matmul_size'] = FLAGS.matmul_size
  cache_dir = tempfile.mkdtemp(prefix='alexnet_jax_benchmark_cache_')
  try:
    for mode in FLAGS.modes:
      result['rows'][mode] = summarise(mode, *measure(FLAGS.frameworks, mode, cache_dir))
  finally:
    shutil.rmtree(cache_dir, ignore_errors=True)
  result['load_average_after'] = os.getloadavg()
  return result


def main(argv):
  del argv
  if FLAGS.worker:
    workers.serve(_setup)
    return
  if not FLAGS.frameworks or set(FLAGS.frameworks) - {'jax', 'torch'}:
    raise app.UsageError(f'--frameworks takes jax and/or torch, not {FLAGS.frameworks}.')
  if not FLAGS.modes or set(FLAGS.modes) - set(MODES):
    raise app.UsageError(f'--modes takes some of {", ".join(MODES)}, not {FLAGS.modes}.')
  result = run_all()
  print(table(result))
  print('load average (1, 5, 15 min): before %.2f %.2f %.2f, after %.2f %.2f %.2f' % (
      *result['load_average'], *result['load_average_after']))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
