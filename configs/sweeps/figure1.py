"""Figure 1 of the paper: ReLU against tanh, each over a small learning-rate grid, 3 seeds each.

  python launch/sweep.py --config=configs/figure1.py --sweep=configs/sweeps/figure1.py \
      --workdir_root=runs/figure1
  python -m alexnet_jax.tools.report runs/figure1 --train_error=0.25

Each activation is then read at its own best learning rate (fewest steps to 25% training error,
mean over seeds), as the paper chose "the learning rates for each network ... to make training as
fast as possible". launch/results.py does that and draws the figure.
"""
ACTIVATIONS = ('relu', 'tanh')
LEARNING_RATES = (0.001, 0.003, 0.01)
SEEDS = (0, 1, 2)
STEPS = {'relu': {}, 'tanh': {'config.total_steps': 800}}  # tanh is slower: a longer cap


def get_sweep():
  return [{'config.model.activation': activation, 'config.optimizer.learning_rate': lr,
           'config.seed': seed, **STEPS[activation]}
          for activation in ACTIVATIONS for lr in LEARNING_RATES for seed in SEEDS]
