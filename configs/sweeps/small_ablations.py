"""The paper's ablations (ablations.py) for configs/small_ablations.py (its baseline: no dropout).

  for seed in 0 1; do python launch/sweep.py --config=configs/small_ablations.py \
      --sweep=configs/sweeps/small_ablations.py --workdir_root=runs/ablations/seed$seed \
      --config.seed=$seed; done

That small network stayed near chance with dropout 0.5 (see configs/small_ablations.py), so its
baseline has none and the dropout point adds the paper's 0.5 instead of removing it.
"""
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    'ablations', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ablations.py'))
ablations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablations)


def get_sweep():
  return [{'config.model.dropout_rate': 0.5} if point == {'config.model.dropout_rate': 0.0}
          else point for point in ablations.get_sweep()]
