"""The benchmark's PyTorch CIFAR-10 networks compute what the project's Flax networks compute."""
import jax
import numpy as np
import pytest

from alexnet_jax import cifar_nets
from alexnet_jax.tools import torch_nets


@pytest.mark.parametrize('variant', ['cifar18pct', 'cifar_conv_local'])
def test_torch_twin_gives_the_flax_logits(variant):
  torch = pytest.importorskip('torch')
  size = cifar_nets.IMAGE_SIZE[variant]
  images = np.random.default_rng(0).normal(size=(3, size, size, 3)).astype(np.float32)
  # 'he' init: the files' tiny initW would make every logit nearly 0 and the check weak.
  model = cifar_nets.CifarNet(variant=variant, weight_init='he')
  params = jax.jit(model.init)(jax.random.key(0), images)['params']
  expected = np.asarray(model.apply({'params': params}, images))
  net = torch_nets.cifar_net(torch, variant)
  torch_nets.load_flax_params(torch, net, variant, params)
  # CifarNet scales standardised pixels back to cuda-convnet's 0..255 range itself.
  scale = np.asarray(cifar_nets.model_lib.IMAGENET_STD_RGB, np.float32) * 255.0
  x = torch.from_numpy(images * scale).permute(0, 3, 1, 2).contiguous()
  with torch.no_grad():
    got = net(x).numpy()
  assert np.abs(expected).max() > 1.0  # logits that differ, so the comparison means something
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())
