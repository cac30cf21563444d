"""Per layer: forward + backward time of this project's ops beside PyTorch's, in one run.

  python -m alexnet_jax.tools.layer_profile [--batch 64] [--image_size 224] [--reps 5] [--rounds 5]
      [--json PATH] [--network alexnet | cifar18pct | cifar_conv_local]

Where a train step's time goes, layer by layer, in torchvision's AlexNet layout (fp32): each conv
(with its ReLU), each 3/2 max pool, each dense layer (with its ReLU). A layer's time is one forward
and its backward pass for a fixed random output gradient: weight and input gradients, except
conv1 which has no input gradient, as in training; the forward output is kept (not optimised away). JAX runs the project's own ops
(model.Conv, pooling.max_pool, model.SplitDense) jitted, with alexnet_jax.xla_flags; PyTorch runs
torch.nn's layers with all cores. Each framework is a worker process of its own; they take turns
per round (order swapped each round); the table gives medians over rounds of each round's median
over --reps. What the layers leave out of a step (dropout, adaptive pooling, loss, optimizer
update) is the step time of tools/benchmark minus the sum here. --network=cifar18pct |
cifar_conv_local profiles cuda-convnet's CIFAR-10 network instead (batch 128, its own image size):
JAX runs cifar_nets' ops (model.Conv, cuda_convnet_pool, response_norm, LocalConv, nn.Dense),
PyTorch their torch.nn twins (tools/torch_nets.py).
"""
import functools
import json
import os
import statistics

from absl import flags

from alexnet_jax.tools import benchmark, torch_nets, workers

from alexnet_jax import cli

FLAGS = flags.FLAGS  # --batch, --image_size, --rounds, --json, --worker: tools/benchmark's flags
flags.DEFINE_integer('reps', 5, 'Timed forward + backward passes per layer and round.')


def layers(image_size: int, network: str = 'alexnet') -> list[dict]:
  """The network's layers with their input shapes (NHWC), in order: torchvision AlexNet's, or a
  CIFAR-10 network's (torch_nets.layers)."""
  if network != 'alexnet':
    return torch_nets.layers(network)
  out, size, channels = [], image_size, 3
  for i, conv in enumerate(benchmark.convs()):
    out.append(dict(name=f'conv{i + 1}', kind='conv', hw=size, cin=channels, features=conv.features,
                    kernel=conv.kernel, stride=conv.stride, pad=conv.padding, input_grad=i > 0))
    size = (size + 2 * conv.padding - conv.kernel) // conv.stride + 1
    channels = conv.features
    if conv.pool:
      out.append(dict(name=f'pool{i + 1}', kind='pool', hw=size, cin=channels, input_grad=True))
      size = (size - 3) // 2 + 1
  for i, (fan_in, fan_out) in enumerate(benchmark.dense()):
    out.append(dict(name=f'fc{i + 6}', kind='dense', cin=fan_in, features=fan_out, relu=i < 2,
                    input_grad=True))  # fc6's input gradient flows on into conv5
  return out


def _input_shape(layer: dict, batch: int, channels_first: bool) -> tuple[int, ...]:
  if layer['kind'] == 'dense':
    return batch, layer['cin']
  hw = layer['hw']
  return (batch, layer['cin'], hw, hw) if channels_first else (batch, hw, hw, layer['cin'])


def jax_layers(batch: int, image_size: int) -> dict:
  """{name: run()} of jitted forward + backward passes of the project's ops."""
  from alexnet_jax import xla_flags  # pylint: disable=g-import-not-at-top
  xla_flags.apply()
  import jax  # pylint: disable=g-import-not-at-top
  from alexnet_jax import compile_cache  # pylint: disable=g-import-not-at-top
  from alexnet_jax import cli  # pylint: disable=g-import-not-at-top
  compile_cache.enable(cli.load_config_file('default').compilation_cache_dir)
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from alexnet_jax import cifar_nets, model as model_lib, pooling  # pylint: disable=g-import-not-at-top
  key, cifar = jax.random.key(0), FLAGS.network != 'alexnet'

  def layer_fn(layer):
    """(apply(params, x), params) of one layer, its ReLU included."""
    relu = layer['relu'] if 'relu' in layer else layer['kind'] == 'conv'
    activation = jax.nn.relu if relu else lambda y: y
    if layer['kind'] == 'pool':
      pool = ((lambda x: cifar_nets.cuda_convnet_pool(x, layer['pool'], 3, 2)) if cifar
              else (lambda x: pooling.max_pool(x, 3, 2)))
      return lambda params, x: activation(pool(x)), {}
    if layer['kind'] == 'norm':
      norm = cifar_nets.NORMS[FLAGS.network]
      return lambda params, x: cifar_nets.response_norm(x, norm), {}
    init = nn.initializers.normal(0.01)
    if layer['kind'] == 'conv':
      module = model_lib.Conv(layer['features'], layer.get('kernel', 5), layer.get('stride', 1),
                              layer.get('pad', 2))
    elif layer['kind'] == 'local':
      module = cifar_nets.LocalConv(layer['features'], 3, 1, init)
    else:
      module = nn.Dense(layer['features']) if cifar else model_lib.SplitDense(layer['features'])
    apply = lambda params, x: activation(module.apply(params, x))
    return apply, module.init(key, jax.random.normal(key, _input_shape(layer, batch, False)))

  def forward_backward(apply, input_grad: bool):
    def step(params, x, grad):
      # The forward output is returned too: else XLA drops forward work the backward does not use.
      if input_grad:
        y, vjp = jax.vjp(apply, params, x)
      else:
        y, vjp = jax.vjp(lambda p: apply(p, x), params)
      return y, vjp(grad)
    return jax.jit(step)

  runs = {}
  for layer in layers(image_size, FLAGS.network):
    apply, params = layer_fn(layer)
    x = jax.random.normal(key, _input_shape(layer, batch, False))
    grad = jax.random.normal(key, jax.eval_shape(apply, params, x).shape)
    step = forward_backward(apply, layer['input_grad'])
    runs[layer['name']] = functools.partial(
        lambda step, *args: jax.block_until_ready(step(*args)), step, params, x, grad)
  return runs


def torch_layers(batch: int, image_size: int) -> dict:
  """{name: run()} of forward + backward passes of torch.nn's layers, all cores."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  runs = {}
  for layer in layers(image_size, FLAGS.network):
    if FLAGS.network != 'alexnet':
      module = torch_nets.module(torch, FLAGS.network, layer)
      module = torch.nn.Sequential(module, torch.nn.ReLU()) if layer['relu'] else module
    elif layer['kind'] == 'conv':
      module = torch.nn.Sequential(torch.nn.Conv2d(layer['cin'], layer['features'],
                                                   layer['kernel'], layer['stride'], layer['pad']),
                                   torch.nn.ReLU())
    elif layer['kind'] == 'pool':
      module = torch.nn.MaxPool2d(3, 2)
    else:
      linear = torch.nn.Linear(layer['cin'], layer['features'])
      module = torch.nn.Sequential(linear, torch.nn.ReLU()) if layer['relu'] else linear
    x = torch.randn(_input_shape(layer, batch, True), requires_grad=layer['input_grad'])
    grad = torch.randn(module(x).shape)

    def run(module=module, x=x, grad=grad):
      module.zero_grad(set_to_none=True)
      x.grad = None
      module(x).backward(grad)
    runs[layer['name']] = run
  return runs


def _sizes() -> tuple[int, int]:
  """(batch, image size): the flags, or the network's defaults as tools/benchmark has them."""
  return benchmark._batch('train'), benchmark._image_size()  # pylint: disable=protected-access


def _setup():
  """Worker: builds and warms every layer, then 'run REPS' -> {layer: median seconds}."""
  runs = (jax_layers if FLAGS.worker == 'jax' else torch_layers)(*_sizes())
  for run in runs.values():
    run()  # compile / warm up
  return {'layers': list(runs)}, lambda command: {
      name: statistics.median(workers.timed(run)['seconds'] for _ in range(int(command[1])))
      for name, run in runs.items()}


def measure() -> dict:
  """{'jax': {layer: ms}, 'torch': {layer: ms}}: medians over alternating rounds."""
  batch, size = _sizes()
  args = (f'--batch={batch}', f'--image_size={size}', f'--network={FLAGS.network}')
  running = {name: workers.Worker(name, 'alexnet_jax.tools.layer_profile', args)
             for name in ('jax', 'torch')}
  rounds = {name: [] for name in running}
  try:
    for r in range(FLAGS.rounds):
      for name in (('jax', 'torch') if r % 2 == 0 else ('torch', 'jax')):
        rounds[name].append(running[name].ask(f'run {FLAGS.reps}'))
  finally:
    for worker in running.values():
      worker.close()
  return {name: {layer: 1e3 * statistics.median(r[layer] for r in got) for layer in got[0]}
          for name, got in rounds.items()}


def table(result: dict) -> str:
  jax_ms, torch_ms = result['jax'], result['torch']
  batch, size = _sizes()
  name = 'torchvision layout' if FLAGS.network == 'alexnet' else FLAGS.network
  lines = [f"Forward + backward per layer (ms), {name}, fp32, batch {batch}, "
           f"{size}x{size}; {workers.cpu_name()}, {os.cpu_count()} cores",
           f"{'layer':8}{'JAX':>10}{'PyTorch':>10}{'JAX/PyTorch':>13}"]
  for layer in jax_ms:
    lines.append(f'{layer:8}{jax_ms[layer]:10.1f}{torch_ms[layer]:10.1f}'
                 f'{jax_ms[layer] / torch_ms[layer]:13.2f}')
  total_jax, total_torch = sum(jax_ms.values()), sum(torch_ms.values())
  lines.append(f"{'sum':8}{total_jax:10.1f}{total_torch:10.1f}{total_jax / total_torch:13.2f}")
  return '\n'.join(lines)


def main(argv):
  del argv
  if FLAGS.worker:
    workers.serve(_setup)
    return
  result = measure()
  print(table(result))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      batch, size = _sizes()
      json.dump(dict(result, network=FLAGS.network, batch=batch, image_size=size), f, indent=1)


if __name__ == '__main__':
  cli.run(main, uses_jax=False)  # its own XLA flags and cache, where it needs them
