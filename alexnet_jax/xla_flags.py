"""The project's XLA flags, added to XLA_FLAGS before jax is imported (call apply() first thing).

  from alexnet_jax import xla_flags
  xla_flags.apply()  # before `import jax` anywhere in the process
  import jax

A flag the caller already put in XLA_FLAGS wins over ours, so any of them can be turned off or
changed from the shell, e.g. XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= .
Measured with python -m alexnet_jax.tools.benchmark (README); they change speed, not the numbers.
"""
import os

# --xla_cpu_experimental_ynn_fusion_type=dot: XLA:CPU hands dots (and what fuses into them) to
# YNNPACK instead of Eigen; the classifier's matmuls and their gradients gain the most.
FLAGS = {
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
