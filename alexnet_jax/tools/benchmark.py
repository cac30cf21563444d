"""Train-step images/s of this project beside PyTorch's AlexNet on the same CPU, in one run.

  python -m alexnet_jax.tools.benchmark [--batch 64] [--image_size 224] [--steps 5] [--rounds 5]
      [--json PATH]

Both run torchvision's AlexNet layout (61,100,840 parameters), fp32, on one fixed synthetic batch:
this project's train step exactly as the CLI builds it (jit(shard_map), donated state, on a 1x1
mesh of the default CPU device, which uses all cores), and a plain PyTorch model + SGD step
(momentum 0.9, the same weight decay) with torch.set_num_threads(os.cpu_count()). Each framework
runs in a worker process of its own (its own peak RSS, time to first step, thread pools); they take
turns, --steps steps each per round, the order swapped every round, and the table gives medians.
The ratio is the median over rounds of JAX / PyTorch images/s. MFU: training FLOPs per second
(forward, weight and input gradients) over the peak of a jitted fp32 4096x4096 matmul, timed once
per round (the fastest round).
CPU time per image (all threads of a worker) is reported too: on a shared machine, other processes
slow the wall clock far more than they add to it. The JAX worker applies alexnet_jax.xla_flags;
a flag the caller sets in XLA_FLAGS wins.
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch', 64, 'Global batch size.')
flags.DEFINE_integer('image_size', 224, 'Input height and width.')
flags.DEFINE_integer('steps', 5, 'Timed train steps per round and framework.')
flags.DEFINE_integer('rounds', 5, 'Alternating rounds; the table gives medians.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps after the first one.')
flags.DEFINE_string('json', '', 'Also write the results to this JSON file.')
flags.DEFINE_list('frameworks', ['jax', 'torch'], 'Which of jax, torch to run.')
flags.DEFINE_string('worker', '', 'Internal: serve as this framework\'s worker process.')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MATMUL_N = 4096
NUM_CLASSES = 1000
# torchvision's AlexNet: (out channels, kernel, stride, padding, 3/2 max pool after) per conv.
CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
         (256, 3, 1, 1, False), (256, 3, 1, 1, True))
DENSE = ((256 * 6 * 6, 4096), (4096, 4096), (4096, NUM_CLASSES))


def train_flops_per_image(image_size: int) -> float:
  """2 x multiply-adds of forward, weight gradient and input gradient (none for the images)."""
  size, channels, flops = image_size, 3, 0.0
  for i, (out, kernel, stride, pad, pool) in enumerate(CONVS):
    size = (size + 2 * pad - kernel) // stride + 1
    flops += 2 * size * size * out * kernel * kernel * channels * (2 if i == 0 else 3)
    size, channels = ((size - 3) // 2 + 1 if pool else size), out
  return flops + sum(2 * 3 * fan_in * fan_out for fan_in, fan_out in DENSE)


def _synthetic(batch: int, image_size: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.standard_normal((batch, image_size, image_size, 3), np.float32)
  return images, rng.integers(0, NUM_CLASSES, batch).astype(np.int32)


def _timed(fn, *args) -> dict:
  """Wall seconds, and CPU seconds of this process (all threads; less disturbed by other load)."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn(*args)
  return {'seconds': time.perf_counter() - wall, 'cpu_seconds': time.process_time() - cpu}


def jax_worker(batch: int, image_size: int):
  """(run(steps), matmul(), info) for the CLI's train step on a 1x1 mesh of the default device."""
  from alexnet_jax import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.apply()  # before jax is imported
  import jax  # pylint: disable=g-import-not-at-top
  from alexnet_jax import model as model_lib, optim, parallel  # pylint: disable=g-import-not-at-top
  from alexnet_jax import train_step as step_lib  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  config = default.get_config()
  config.model.variant, config.mesh.data = 'torchvision', 1  # the 1x1 mesh of one device
  mesh = parallel.make_mesh(config.mesh, devices=jax.devices()[:1])
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=10_000, total_steps=10**6)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = model_lib.AlexNet(**config.model)
  state, specs = step_lib.create_train_state(model, tx, mesh, image_size=image_size,
                                             seed=config.seed)
  step = step_lib.make_train_step(model, tx, mesh, specs, seed=config.seed)
  images, labels = _synthetic(batch, image_size)
  data = parallel.global_batch(mesh, {'image': images, 'label': labels})
  holder = [state]

  def run(steps: int):  # dispatch only; one wait at the end
    state, metrics = holder[0], None
    for _ in range(steps):
      state, metrics = step(state, data)
    holder[0] = jax.block_until_ready((state, metrics))[0]

  run(1)
  first_step_s = time.perf_counter() - start
  a = jax.random.normal(jax.random.key(0), (MATMUL_N, MATMUL_N), 'float32')
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  info = dict(first_step_s=first_step_s, version=jax.__version__,
              params=model_lib.count_params(holder[0].params),
              xla_flags=os.environ.get('XLA_FLAGS', ''))
  return run, lambda: matmul(a).block_until_ready(), info


def torch_alexnet(torch):
  """torchvision.models.alexnet's layout in plain torch.nn (torchvision is not installable here)."""
  nn, layers, channels = torch.nn, [], 3
  for out, kernel, stride, pad, pool in CONVS:
    layers += [nn.Conv2d(channels, out, kernel, stride, pad), nn.ReLU(inplace=True)]
    layers += [nn.MaxPool2d(3, 2)] if pool else []
    channels = out
  layers += [nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten()]
  for i, (fan_in, fan_out) in enumerate(DENSE):
    layers += [nn.Dropout(0.5)] if i < 2 else []
    layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU(inplace=True)] if i < 2 else [])
  return nn.Sequential(*layers)


def torch_worker(batch: int, image_size: int):
  """(run(steps), None, info) for PyTorch's model + SGD step with all cores."""
  import torch  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  start = time.perf_counter()
  opt_config = default.get_config().optimizer
  torch.manual_seed(0)
  model = torch_alexnet(torch).train()
  opt = torch.optim.SGD(model.parameters(), lr=opt_config.learning_rate,
                        momentum=opt_config.momentum, weight_decay=opt_config.weight_decay)
  images, labels = _synthetic(batch, image_size)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
  y = torch.from_numpy(labels).long()

  def run(steps: int):
    for _ in range(steps):
      opt.zero_grad(set_to_none=True)
      torch.nn.functional.cross_entropy(model(x), y).backward()
      opt.step()

  run(1)
  info = dict(first_step_s=time.perf_counter() - start, version=torch.__version__,
              params=sum(p.numel() for p in model.parameters()), threads=torch.get_num_threads())
  return run, None, info


def serve(framework: str) -> None:
  """Worker loop: 'run N' | 'matmul' | 'done' on stdin, one JSON line each on stdout."""
  out = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)  # library chatter goes to stderr, the protocol alone to `out`
  sys.path.insert(0, ROOT)
  run, matmul, info = (jax_worker if framework == 'jax' else torch_worker)(FLAGS.batch,
                                                                            FLAGS.image_size)
  run(FLAGS.warmup)
  reply = info
  while True:
    out.write(json.dumps(reply) + '\n')
    out.flush()
    command = sys.stdin.readline().split() or ['done']
    if command[0] == 'run':
      reply = _timed(run, int(command[1]))
    elif command[0] == 'matmul':
      reply = _timed(matmul)
    else:
      out.write(json.dumps({'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            / 1024}) + '\n')  # ru_maxrss is in KiB on Linux
      out.close()
      return


class Worker:
  """A framework's worker process: setup at start, then one command at a time."""

  def __init__(self, framework: str, module: str = 'alexnet_jax.tools.benchmark',
               args: tuple[str, ...] | None = None):
    self.framework = framework
    if args is None:
      args = (f'--batch={FLAGS.batch}', f'--image_size={FLAGS.image_size}',
              f'--warmup={FLAGS.warmup}')
    argv = [sys.executable, '-m', module, f'--worker={framework}', *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=ROOT, env=env)
    self.info = self._read()

  def _read(self) -> dict:
    line = self.process.stdout.readline()
    if not line:
      raise RuntimeError(f'the {self.framework} worker exited with {self.process.wait()} '
                         f'(its stderr is above).')
    return json.loads(line)

  def ask(self, command: str) -> dict:
    self.process.stdin.write(command + '\n')
    self.process.stdin.flush()
    return self._read()

  def close(self) -> dict:
    reply = self.ask('done')
    self.process.wait()
    return reply


def measure(frameworks):
  """Alternating rounds: ({name: [timings per round]}, {name: worker info}); 'matmul' too."""
  workers = {name: Worker(name) for name in frameworks}  # one at a time: clean first-step times
  times = {name: [] for name in frameworks + ['matmul']}
  try:
    for r in range(FLAGS.rounds):
      for name in (frameworks if r % 2 == 0 else frameworks[::-1]):
        times[name].append(workers[name].ask(f'run {FLAGS.steps}'))
      if 'jax' in workers:
        times['matmul'].append(workers['jax'].ask('matmul'))
  finally:
    infos = {name: dict(w.info, **w.close()) for name, w in workers.items()}
  return times, infos


def summarise(times, infos) -> dict:
  """images/s, step time, MFU, ratio (medians over rounds) and each worker's own figures."""
  flops = train_flops_per_image(FLAGS.image_size)
  result = dict(batch=FLAGS.batch, image_size=FLAGS.image_size, steps=FLAGS.steps,
                rounds=FLAGS.rounds, cpu=_cpu_name(), cores=os.cpu_count(),
                train_gflop_per_image=flops / 1e9)
  if times['matmul']:
    result['matmul_gflops'] = max(  # a peak: the least disturbed round
        2 * MATMUL_N ** 3 / t['seconds'] for t in times['matmul']) / 1e9
  for name, info in infos.items():
    images = FLAGS.batch * FLAGS.steps
    rates = [images / t['seconds'] for t in times[name]]
    result[name] = dict(info, images_per_sec=statistics.median(rates), images_per_sec_rounds=rates,
                        step_ms=1e3 * FLAGS.batch / statistics.median(rates),
                        cpu_ms_per_image=1e3 * statistics.median(
                            t['cpu_seconds'] / images for t in times[name]))
    if 'matmul_gflops' in result:
      result[name]['mfu'] = result[name]['images_per_sec'] * flops / 1e9 / result['matmul_gflops']
  if 'jax' in infos and 'torch' in infos:
    ratios = [j / t for j, t in zip(result['jax']['images_per_sec_rounds'],
                                    result['torch']['images_per_sec_rounds'])]
    cpu_ms = result['torch']['cpu_ms_per_image'], result['jax']['cpu_ms_per_image']
    result.update(ratio=statistics.median(ratios), ratio_rounds=ratios,
                  cpu_time_ratio=cpu_ms[0] / cpu_ms[1])
  return result


def _cpu_name() -> str:
  with open('/proc/cpuinfo') if os.path.exists('/proc/cpuinfo') else open(os.devnull) as f:
    names = [l.split(':', 1)[1].strip() for l in f if l.startswith('model name')]
  return names[0] if names else platform.processor() or platform.machine()


def table(result: dict) -> str:
  names = [n for n in ('jax', 'torch') if n in result]
  heads = {'jax': f"JAX {result.get('jax', {}).get('version', '')}",
           'torch': f"PyTorch {result.get('torch', {}).get('version', '')}"}
  rows = [('images/s (median)', 'images_per_sec', '{:.1f}'), ('step (ms)', 'step_ms', '{:.0f}'),
          ('CPU time / image (ms)', 'cpu_ms_per_image', '{:.1f}'),
          ('MFU', 'mfu', '{:.1%}'), ('time to first step (s)', 'first_step_s', '{:.1f}'),
          ('peak RSS (MiB)', 'peak_rss_mib', '{:.0f}')]
  lines = [f"AlexNet (torchvision layout) train step, fp32, batch {result['batch']}, "
           f"{result['image_size']}x{result['image_size']}, {result['rounds']} rounds x "
           f"{result['steps']} steps; {result['cpu']}, {result['cores']} cores",
           f"{'':24}" + ''.join(f'{heads[n]:>20}' for n in names)]
  for label, key, fmt in rows:
    cells = [fmt.format(result[n][key]) if key in result[n] else '-' for n in names]
    lines.append(f'{label:24}' + ''.join(f'{c:>20}' for c in cells))
  if 'ratio' in result:
    spread = result['ratio_rounds']
    lines.append(f"JAX / PyTorch images/s: {result['ratio']:.3f} (median of rounds; "
                 f"{min(spread):.3f}-{max(spread):.3f}); "
                 f"by CPU time per image: {result['cpu_time_ratio']:.3f}")
  if 'matmul_gflops' in result:
    lines.append(f"matmul peak: {result['matmul_gflops']:.0f} GFLOP/s (jitted fp32 {MATMUL_N}^2); "
                 f"model: {result['train_gflop_per_image']:.2f} GFLOP/image")
  if 'jax' in result:
    lines.append(f"XLA_FLAGS: {result['jax']['xla_flags']}")
  return '\n'.join(lines)


def main(argv):
  del argv
  if FLAGS.worker:
    serve(FLAGS.worker)
    return
  if not FLAGS.frameworks or set(FLAGS.frameworks) - {'jax', 'torch'}:
    raise app.UsageError(f'--frameworks takes jax and/or torch, not {FLAGS.frameworks}.')
  result = summarise(*measure(FLAGS.frameworks))
  print(table(result))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  app.run(main)
