"""launch/cifar10_page.py: Figure 1's ratio with its spread (a bound when tanh never got there),
the normalization difference with its standard error, the picture."""
import os
import sys

from PIL import Image

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'launch'))
import cifar10_page  # pylint: disable=g-import-not-at-top,wrong-import-position  # launch/cifar10_page.py


def _activation(lr, epochs, cap):
  return {'probe_epochs': 2.0, 'probe_error': {'0.003': 0.6, '0.01': 0.5, '0.03': 0.55}, 'lr': lr,
          'cap': cap, 'epochs': dict(zip('012', epochs)),
          # training error falls linearly from 0.9 to 0.25 at e epochs (a seed that never got
          # there: at twice its cap), logged every quarter epoch up to e (or the cap)
          'curves': {seed: [(0.25 * i, max(0.25, 0.9 - 0.65 * 0.25 * i / (e or 2 * cap)))
                            for i in range(int(4 * (e or cap)) + 1)]
                     for seed, e in zip('012', epochs)}}


def _facts(tanh_epochs):
  runs = {f'lrn={flag},seed={seed}': {'lrn': flag, 'seed': seed, 'error': error,
                                      'train_error': 0.3, 'top5_error': 0.05}
          for flag, errors in ((True, (0.30, 0.32, 0.31)), (False, (0.35, 0.33, 0.34)))
          for seed, error in enumerate(errors)}
  return {'figure1': {'relu': _activation(0.01, [2.0, 3.0, 4.0], 30),
                      'tanh': _activation(0.03, tanh_epochs, 60)},
          'lrn': {'epochs': 4, 'decay_at': 3, 'runs': runs}}


def test_the_page_gives_the_ratio_of_means_its_range_and_the_lrn_difference(tmp_path):
  text = open(cifar10_page.write(_facts([6.0, 9.0, 12.0]), str(tmp_path))).read()
  assert '**tanh / ReLU: 3.00x**' in text  # 9 / 3
  assert 'The paper: about 6x.' in text  # section 3.1
  # 50%: ReLU's seeds at 1.25, 2.0 and 2.5 epochs (the first log point at or under the line),
  # tanh's at 3.75, 5.75 and 7.5
  assert '| 50% | 1.92 | 5.67 | 2.96x |' in text and '| 25% | 3.00 | 9.00 | 3.00x |' in text
  assert 'from 1.50x to 6.00x' in text  # 6 / 4 and 12 / 2
  assert '| ReLU | 0.003: 0.600, 0.01: 0.500, 0.03: 0.550 | 0.01 | 2.00, 3.00, 4.00 | 3.00 ± 1.00 |' in text
  assert '| with normalization | 30.00%, 32.00%, 31.00% | 31.00% ± 1.00% |' in text
  # 34% - 31% = 3 points; standard error sqrt(2 * 0.01^2 / 3) = 0.82 points
  assert '**Normalization lowers the held-out error by 3.00 ± 0.82 points**' in text
  assert 'in 9 of the 9 seed pairs the network with normalization' in text  # 0.32 < 0.33
  image = Image.open(tmp_path / 'cifar10' / 'figure1.png')
  pixels = image.convert('RGB').getdata()
  assert any(r > 200 and g < 80 and b < 80 for r, g, b in pixels)  # tanh's red curves are drawn
  assert any(b > 150 and r < 80 for r, g, b in pixels)  # and ReLU's blue ones


def test_a_tanh_seed_that_never_got_there_makes_the_ratio_a_lower_bound(tmp_path):
  text = open(cifar10_page.write(_facts([6.0, None, 12.0]), str(tmp_path))).read()
  assert '**tanh / ReLU: ≥ 8.67x**' in text  # (6 + 60 + 12) / 3 / 3
  assert '| 6.00, >60, 12.00 | 2 of 3 reached |' in text
  facts = _facts([6.0, None, 12.0])
  facts['figure1']['tanh']['epochs_run'] = {'0': 6.0, '1': 15.0, '2': 12.0}  # seed 1 stopped at 15
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert '**tanh / ReLU: ≥ 3.67x**' in text and '| 6.00, >15, 12.00 |' in text  # 33 / 3 / 3


def test_the_difference_runs_are_compared_at_a_line_every_curve_reaches(tmp_path):
  facts = _facts([6.0, 9.0, 12.0])
  # Seed-0 curves above: relu down to 0.25 at 2 epochs, tanh at 6 (0.47 after 4); with the
  # difference (4 epochs): relu 0.9 - 0.2 * epoch, tanh 0.9 - 0.05 * epoch, lowest 0.7 at 4 epochs.
  facts['difference'] = {'override': 'config.model.lrn=False', 'epochs': 4.0, 'curves': {
      'relu': [(0.5 * i, 0.9 - 0.1 * i) for i in range(9)],
      'tanh': [(0.5 * i, 0.9 - 0.025 * i) for i in range(9)]}}
  assert cifar10_page.difference_line(facts['figure1'], facts['difference']) == 0.7
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert '| as above | 0.75 | 2.00 | 2.67x |' in text  # the first log points at or under 0.7
  assert '| `config.model.lrn=False` | 1.00 | 4.00 | 4.00x |' in text


def _member(top1, top5):
  return {'workdir': 'w', 'step': 4212, 'count': 5000, 'loss': 0.7, 'top1': top1, 'top5': top5}


def test_the_alexnet_and_ensemble_sections_state_their_numbers(tmp_path):
  facts = _facts([6.0, 9.0, 12.0])
  facts['alexnet'] = {
      'epochs': 12.0, 'train_seconds': 1703.0, 'final_train_top1': 0.765,
      'eval': {'1': {'count': 5000, 'loss': 0.69, 'top1': 0.7562, 'top5': 0.9816},
               '10': {'count': 5000, 'loss': 0.66, 'top1': 0.7762, 'top5': 0.9858}},
      'pictures': {name: {'path': f'cifar10/alexnet_{name}.png', 'command': f'python -m {name}'}
                   for name in ('filters', 'neighbours')}}
  facts['ensemble'] = {'crops': {'1': {
      'members': [_member(0.75, 0.98), _member(0.76, 0.98), _member(0.77, 0.98)],
      'ensemble': {'count': 5000, 'loss': 0.6, 'top1': 0.80, 'top5': 0.99}}}}
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert '| centre crop | 75.62% | 98.16% | 0.690 | 5000 |' in text
  assert 'Training took 28.4 minutes' in text and '10 crops add +2.00 points' in text
  assert '![conv1 kernels](cifar10/alexnet_filters.png)' in text
  assert 'in-band part' not in text  # not drawn: not shown
  facts['alexnet']['pictures']['filters_in_band'] = {
      'path': 'cifar10/alexnet_filters_in_band.png', 'command': 'python -m filters --photo_px=32',
      'said': 'conv1 above 0.219 cycles/pixel: 48.4% of the energy'}
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert ('scales them (the rest meets nothing in any photo): conv1 above 0.219 cycles/pixel: 48.4% '
          'of the energy.\n\n![conv1 kernels, in-band part](cifar10/alexnet_filters_in_band.png)'
          '\n\n`python -m filters --photo_px=32`') in text
  # One network: errors 25%, 24%, 23%, mean 24% ± 1%; the ensemble: 20%, 4 points better.
  assert ('| 1 | 25.00% / 2.00% | 24.00% / 2.00% | 23.00% / 2.00% | 24.00% ± 1.00% | '
          '20.00% / 1.00% | 4.00 points |') in text
  assert 'one CNN 40.7% / 18.2%, five CNNs 38.1% / 16.4%: 2.6 points' in text
  # Time: 12 epochs of the run and 24 of the ensemble's two other seeds, 45,000 photos each, at the
  # run's 540,000 / 1703 s = 317 images/s.
  assert ('went through 1.62 million training images (the 12-epoch run 0.54M, the ensemble\'s '
          'other seeds 1.08M). At the 12-epoch run\'s rate on the 2 idle cores, 317 images/s, that '
          'is 1.4 hours of train steps; without the ensemble\'s runs, which only Table 2 below '
          'needs, 0.5 hours') in text
  # A run that shared the cores: its time on idle ones, as derived elsewhere, and how.
  facts['alexnet'].update(idle_seconds=1500.0, idle_note='from an idle A/B')
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert 'Training took 25.0 minutes of train steps on the 2 idle CPU cores (evaluation and start-up not counted; from an idle A/B)' in text
  assert '360 images/s, that is 1.2 hours' in text
  # An ensemble of runs with flags of their own: all three are runs of their own.
  facts['ensemble']['flags'] = '--config.model.dropout_rate=0.5'
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert 'the 12-epoch run 0.54M, the ensemble\'s runs 1.62M)' in text


def test_recipe_ablation_and_transfer_sections_from_facts(tmp_path):
  """Each number of the made-up facts lands in its row; the ablation verdicts follow the seeds."""
  facts = {
      'recipe': {'epochs': 3.0, 'runs': {
          'a': {'lr': 0.01, 'dropout': 0.5, 'top1': 0.6012, 'train_top1': 0.55},
          'b': {'lr': 0.02, 'dropout': 0.0, 'top1': 0.6543, 'train_top1': 0.7},
          'c': {'lr': 0.01, 'dropout': 0.0, 'resize_ratio': 1.0, 'top1': 0.6611, 'train_top1': 0.6},
          'd': {'lr': 0.01, 'dropout': 0.0, 'resize_ratio': 1.0667, 'top1': 0.66, 'train_top1': 0.6}}},
      'ablations': {'epochs': 2.0, 'seeds': [0, 1], 'runs': {
          f'{change},seed={seed}': {'change': change, 'seed': seed, 'top1': top1 + 0.01 * seed,
                                    'train_top1': 0.5}
          for change, top1 in (('baseline', 0.55), ('model.lrn=False', 0.52),
                               ('data.flip=False', 0.555)) for seed in (0, 1)}},
      'transfer': {'per_class': 500, 'pretrain_epochs': 6.0, 'scratch_epochs': 40.0,
                   'pretrain': {'top1': 0.8}, 'runs': {
                       f'{kind},seed={seed}': {
                           'kind': kind, 'seed': seed, 'top1': top1 + 0.001 * seed, 'count': 985,
                           'steps': 310, 'command': f'python -m alexnet_jax.main --config={kind}'}
                       for kind, top1 in (('finetune', 0.8), ('scratch', 0.65))
                       for seed in (0, 1, 2)},
                   'probes': {name: {'train': 1000, 'eval': 985, 'command': f'python probe {name}',
                                     'layers': {'fc6': {'top1': top1}, 'fc7': {'top1': top1 + 0.1}}}
                              for name, top1 in (('pretrained', 0.6), ('random_init', 0.55))}},
  }
  # An AlexNet section is needed for the recipe's subsection; take the page's own.
  facts['alexnet'] = {'eval': {'1': {'top1': 0.75, 'top5': 0.98, 'loss': 0.7, 'count': 5000},
                               '10': {'top1': 0.77, 'top5': 0.98, 'loss': 0.65, 'count': 5000}},
                      'epochs': 12.0, 'train_seconds': 1700.0, 'final_train_top1': 0.76,
                      'pictures': {'filters': {'path': 'cifar10/f.png', 'command': 'f'},
                                   'neighbours': {'path': 'cifar10/n.png', 'command': 'n'}}}
  text = open(cifar10_page.write(facts, str(tmp_path))).read()
  assert '| 0.02 | 0.0 | 28 px (256/224, the config\'s) | 65.43% | 70.00% |' in text
  # The windows after the grid, from the config's 28 of the 32 pixels outwards: 30, then all 32.
  thirty = text.index('| 0.01 | 0.0 | 30 px (1.0667) | 66.00% | 60.00% |')
  whole = text.index('| 0.01 | 0.0 | 32 px, the whole photo (1) | 66.11% | 60.00% |')
  assert text.index('| 0.02 | 0.0 | 28 px') < thirty < whole
  # baseline errors 45%, 44%; no LRN 48%, 47% (above both); no flips 44.5%, 43.5% (overlapping)
  assert '| none (baseline) | | 44.50% ± 0.71% |' in text
  assert '| `model.lrn=False` | no LRN: +1.4' in text and '| +3.00 | yes: above every baseline' in text
  assert '| `data.flip=False` |' in text and '| 44.00% ± 0.71% | -0.50 | no |' in text
  assert ("| fine-tuned from the 8-class run: the classifier (FC6-FC8), lr 0.001, the config's | "
          '0: 80.00%, 1: 80.10%, 2: 80.20% | 80.10% ± 0.10% |') in text
  assert '| from scratch | 0: 65.00%, 1: 65.10%, 2: 65.20% | 65.10% ± 0.10% | 985 | 310 |' in text
  assert '--config=finetune --config.init_from=PRETRAINED' in text
  assert '| features of | fc6 | fc7 |' in text and '| the 8-class run | 60.00% | 70.00% |' in text
  assert '| the same network, freshly initialised | 55.00% | 65.00% |' in text
  assert 'the 1000 training cats and dogs' in text and '- the 8-class run: `python probe pretrained`' in text


def test_the_checked_in_page_is_the_rendering_of_the_saved_facts(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(REPO, 'docs', 'cifar10', 'facts.json')) as f:
    facts = json.load(f)
  with open(cifar10_page.write(facts, str(tmp_path))) as f:
    rendered = f.read()
  with open(os.path.join(REPO, 'docs', 'cifar10.md')) as f:
    assert f.read() == rendered
