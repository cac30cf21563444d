"""The project's XLA flags, added to XLA_FLAGS before jax initialises (call apply() first thing).

  from alexnet_jax import xla_flags
  xla_flags.apply()  # before jax creates its backend: before any jax import, to be safe
  import jax

A flag the caller already put in XLA_FLAGS wins over ours, so each can be changed or turned off
from the shell, e.g. XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= (the XLA default).
Measured with python -m alexnet_jax.tools.benchmark; they change speed, not the model.
"""
import os

FLAGS = {
    # XLA:CPU hands dots (the classifier's matmuls and their gradients) to YNNPACK instead of
    # Eigen: a faster train step on CPU; the fusion types individual_convolution, eltwise and
    # reduce made it slower (README 'Train-step speed against PyTorch' has the measurements).
    # Results differ from Eigen's in the last bits (another summation order).
    'xla_cpu_experimental_ynn_fusion_type': 'dot',
}


def _name(flag: str) -> str:
  return flag.lstrip('-').split('=', 1)[0]


def apply(environ=None) -> str:
  """Adds FLAGS to environ['XLA_FLAGS'] (default os.environ) unless set there; returns the value."""
  environ = os.environ if environ is None else environ
  current = environ.get('XLA_FLAGS', '').split()
  present = {_name(flag) for flag in current}
  added = [f'--{name}={value}' for name, value in FLAGS.items() if name not in present]
  environ['XLA_FLAGS'] = ' '.join(current + added)
  return environ['XLA_FLAGS']
