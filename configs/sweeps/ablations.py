"""The paper's ablations, one change each from the baseline (Krizhevsky et al. 2012, sections 3-5).

  python launch/sweep.py --config=configs/default.py --sweep=configs/sweeps/ablations.py \
      --workdir_root=/runs/ablations

Expected from the paper (top-1 / top-5 error, points): no LRN +1.4 / +1.2; non-overlapping 2/2
pooling +0.4 / +0.3; tanh trains several times slower than ReLU (Figure 1); without PCA lighting
top-1 error rises by over 1 point; without dropout the network overfits substantially.
"""


def get_sweep():
  return [
      {},  # the baseline the others are compared with
      {'config.model.lrn': False},
      {'config.model.overlap_pool': False},
      {'config.model.groups': 1},  # ungrouped convs (the paper's 1-GPU net also halved the kernels)
      {'config.model.dropout_rate': 0.0},
      {'config.model.activation': 'tanh'},
      {'config.data.pca_lighting_std': 0.0},
      {'config.data.flip': False},
  ]
