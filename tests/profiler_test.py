"""The profiler hook: the trace holds exactly the chosen steps, on process 0 only by default."""
import collections
import gzip
import json

import jax
import jax.numpy as jnp
import ml_collections

from alexnet_jax import profiler


def _config(**overrides):
  return ml_collections.ConfigDict(dict(dict(start_step=2, num_steps=2, all_processes=False),
                                        **overrides))


def _run(prof, steps=6):
  @jax.jit
  def toy_step(x):
    return x @ x / 64.0 + 1.0

  x, step = jnp.ones((64, 64)), 0
  while step < steps:
    prof.maybe_start(step, x)
    x = toy_step(x)
    step += 1
    prof.maybe_stop(step, x)
  prof.close()


def _executions(workdir):
  """{hlo module: number of its executions} in the one Perfetto trace under workdir."""
  (trace,) = (workdir / 'plugins' / 'profile').glob('*/perfetto_trace.json.gz')
  with gzip.open(trace) as f:
    events = json.load(f)['traceEvents']
  runs = {(e['args']['hlo_module'], e['args']['run_id']) for e in events
          if isinstance(e.get('args'), dict) and {'run_id', 'hlo_module'} <= set(e['args'])}
  return collections.Counter(module for module, _ in runs)


def test_trace_holds_exactly_the_chosen_steps_for_tensorboard_and_perfetto(tmp_path):
  _run(profiler.Profiler(_config(), str(tmp_path), process_index=0))
  (run,) = (tmp_path / 'plugins' / 'profile').iterdir()  # TensorBoard's profile plugin layout
  assert list(run.glob('*.xplane.pb'))
  assert _executions(tmp_path) == {'jit_toy_step': 2}


def test_other_processes_trace_only_when_asked(tmp_path):
  _run(profiler.Profiler(_config(), str(tmp_path / 'off'), process_index=1))
  assert not (tmp_path / 'off').exists()
  _run(profiler.Profiler(_config(all_processes=True, start_step=0, num_steps=1),
                         str(tmp_path / 'on'), process_index=1))
  assert _executions(tmp_path / 'on') == {'jit_toy_step': 1}
