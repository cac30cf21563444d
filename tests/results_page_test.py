"""launch/results_page.py: the Figure 1 ratio (a bound when tanh never got there), verdicts."""
import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'launch'))
import results_page  # pylint: disable=g-import-not-at-top,wrong-import-position


def _figure1(tanh_steps):
  return {'best': {'relu': {'lr': 0.001, 'grid': {0.001: 100, 0.01: None}, 'steps': [100, 120, 80]},
                   'tanh': {'lr': 0.01, 'grid': {0.001: None, 0.01: 500}, 'steps': tanh_steps}},
          'caps': {'relu': 400, 'tanh': 800}, 'report': '-m alexnet_jax.tools.report r'}


def test_ratio_of_means_and_a_lower_bound_when_a_tanh_seed_never_got_there():
  text = '\n'.join(results_page._figure1(_figure1([500, 400, 600])))
  assert '| ratio tanh / ReLU (means) | about 6 | **5.0** |' in text
  assert '100 ± 20 (seeds: 100, 120, 80) at lr 0.001' in text
  assert '| ReLU | 100 | not reached in 400 |' in text
  assert 'tanh took 5.0x the steps of ReLU' in text and 'about the paper\'s size' in text
  assert 'every ReLU seed got there before every tanh seed' in text
  text = '\n'.join(results_page._figure1(_figure1([500, None, 700])))
  assert '**≥ 6.7**' in text and '(seeds: 500, >800, 700)' in text  # counted at its cap, 800
  text = '\n'.join(results_page._figure1(_figure1([110, 130, 140])))
  assert 'tanh took 1.3x' in text and 'far smaller than the paper' in text
  assert 'the seeds of the two overlap' in text


def test_an_effect_shows_only_when_both_seeds_fall_outside_the_baseline_seeds():
  base = {'top1_by_seed': [0.60, 0.64]}
  assert results_page._verdict({'top1_by_seed': [0.55, 0.59]}, base).startswith('yes: lower')
  assert results_page._verdict({'top1_by_seed': [0.65, 0.70]}, base).startswith('yes: higher')
  assert results_page._verdict({'top1_by_seed': [0.55, 0.61]}, base).startswith('no')
  assert results_page._verdict({'top1_by_seed': [None]}, base) == 'no eval yet'


def test_the_ablation_table_says_which_effects_agree_with_the_paper():
  row = lambda changes, seeds: {'changes': changes, 'top1_by_seed': seeds, 'final_top1': (
      sum(seeds) / 2, 0.01, 2), 'final_train_loss': (1, 0, 2)}
  rows = [row('', [0.60, 0.64]), row('model.lrn=False', [0.50, 0.55]),
          row('data.flip=False', [0.70, 0.72]), row('model.groups=1', [0.61, 0.70])]
  text = '\n'.join(results_page._ablations({'rows': rows}))
  assert '| `model.lrn=False` |' in text
  assert '| -9.5 | yes: lower than every baseline seed | yes |' in text
  assert '| yes: higher than every baseline seed | **no: the opposite** |' in text
  assert ('in the paper\'s direction: `model.lrn=False`; the opposite of the paper: '
          '`data.flip=False`; no effect beyond the seed spread at this scale: '
          '`model.groups=1`.') in text
