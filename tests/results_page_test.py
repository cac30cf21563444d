"""launch/results_page.py: the Figure 1 ratio (a bound when tanh never got there), verdicts, the
whole page from saved and made-up facts."""
import json
import os
import re
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


DOCS = os.path.join(REPO, 'docs')


def _made_up_facts():
  row = lambda changes, seeds: {'changes': changes, 'top1_by_seed': seeds, 'final_top1': (
      sum(seeds) / 2, 0.02, 2), 'final_train_loss': (0.4321, 0, 2)}
  return {
      'figure1': _figure1([500, None, 700]),
      'ablations': {'rows': [row('', [0.60, 0.64]), row('model.lrn=False', [0.50, 0.54])],
                    'report': '-m alexnet_jax.tools.report runs/made_up/ab --output_dir=d/ab'},
      'pictures': {name: {'command': f'python -m alexnet_jax.tools.{name} --output=d/{name}.png',
                          'said': f'wrote d/{name}.png: what {name} said'}
                   for name in ('filters', 'neighbours')},
      'run_minutes': 37.4, 'runs': 26, 'root': 'runs/made_up', 'minutes': 12.34,
      'load_start': 1.3, 'load_end': 3.6, 'date': '2030-01-02',
      'command': 'python launch/results.py --root=runs/made_up'}


def _headings(text):
  return [line for line in text.splitlines() if line.startswith('#')]


def test_the_page_puts_each_fact_beside_its_command_in_its_section(tmp_path):
  facts = _made_up_facts()
  results_page.write(facts, str(tmp_path / 'results.md'))
  text = (tmp_path / 'results.md').read_text()
  assert _headings(text) == [
      "# Results: the paper's claims, measured at a scale that fits 2 CPU cores",
      '## Figure 1: ReLU against tanh', '## Ablations',
      '## Pictures of a trained run (the ablation baseline, seed 0)']
  assert '```\npython launch/results.py --root=runs/made_up\n```' in text
  assert 'reuses the finished runs under `runs/made_up/`' in text
  assert 'the 26 runs trained for 37 min in all' in text
  assert 'took 12.3 min (2030-01-02;' in text
  assert 'load average 1.3\nat its start, 3.6 at its end' in text
  figure1, ablations, pictures = re.split(r'\n## (?:Ablations|Pictures)', text)[-3:]
  # Figure 1's numbers in its table, its report command in its code block.
  assert ('| tanh: steps to 25% training error | | ≥ 667 ± 153 (seeds: 500, >800, 700) at lr '
          '0.01 |') in figure1
  assert '--workdir_root=runs/made_up/figure1' in figure1
  assert 'python -m alexnet_jax.tools.report r\n```' in figure1
  # The ablation rows under Ablations with their report command.
  assert '| none (baseline) | | 62.0 ± 2.0 | | | | 0.432 |' in ablations
  assert '| `model.lrn=False` |' in ablations and '| 52.0 ± 2.0 | -10.0 |' in ablations
  assert '--workdir_root=runs/made_up/ablations/seed$seed' in ablations
  assert 'python -m alexnet_jax.tools.report runs/made_up/ab --output_dir=d/ab\n```' in ablations
  # What each picture's command said, right under it, then the picture.
  for name, picture in facts['pictures'].items():
    block = f'```\n{picture["command"]}\n```\n`{picture["said"]}`\n\n!['
    assert pictures.count(block) == 1, name
  assert pictures.index('tools.filters') < pictures.index('results/filters.png') < pictures.index(
      'tools.neighbours') < pictures.index('results/neighbours.png')


def test_the_cifar10_sections_come_first_and_leave_the_rest_as_it_was(tmp_path):
  with open(os.path.join(DOCS, 'cifar10', 'facts.json')) as f:
    cifar10 = json.load(f)
  results_page.write(_made_up_facts(), str(tmp_path / 'alone.md'))
  results_page.write(_made_up_facts(), str(tmp_path / 'both.md'), cifar10)
  alone, both = (tmp_path / 'alone.md').read_text(), (tmp_path / 'both.md').read_text()
  headings = _headings(both)
  first = headings.index('## Real photographs: CIFAR-10')
  generated = headings.index('## Figure 1 on generated images: ReLU against tanh')
  assert first < generated and '### AlexNet on CIFAR-10' in headings[first:generated]
  head, cifar10_part = both.split('\n## Real photographs: CIFAR-10', 1)
  rest = cifar10_part.split('\n## Figure 1 on generated images', 1)[1]
  assert head + '\n## Figure 1' + rest == alone  # only the sections and a heading were added


def test_the_saved_facts_make_a_page_whose_pictures_and_reports_exist(tmp_path):
  """docs/results/facts.json and docs/cifar10/facts.json rendered: every link resolves from docs/
  (where the page lives), every picture's command writes the picture shown, its words beside it."""
  with open(os.path.join(DOCS, 'results', 'facts.json')) as f:
    facts = json.load(f)
  with open(os.path.join(DOCS, 'cifar10', 'facts.json')) as f:
    cifar10 = json.load(f)
  results_page.write(facts, str(tmp_path / 'results.md'), cifar10)
  text = (tmp_path / 'results.md').read_text()
  links = re.findall(r'\]\(([^)\s]+)\)', text)
  pictures = [link for link in links if link.endswith('.png')]
  assert {'results/figure1.png', 'results/ablations/curves.png', 'results/filters.png',
          'results/neighbours.png', 'cifar10/figure1.png'} <= set(pictures)
  assert [link for link in links if not os.path.isfile(os.path.join(DOCS, link))] == []
  for name in ('filters', 'neighbours'):
    picture = facts['pictures'][name]
    output = re.search(r'--output=(\S+)', picture['command']).group(1)
    assert os.path.relpath(output, 'docs') in pictures  # what the command wrote is what is shown
    assert f'```\n{picture["command"]}\n```\n`{picture["said"]}`' in text
  for activation in ('relu', 'tanh'):
    best = facts['figure1']['best'][activation]
    assert f'(seeds: {", ".join(map(str, best["steps"]))}) at lr {best["lr"]}' in text
  for row in facts['ablations']['rows'][1:]:
    assert f'| `{row["changes"]}` |' in text
  for part in ('figure1', 'ablations'):
    assert f'python {facts[part]["report"]}\n```' in text
  # The checked-in page is this rendering: a hand edit of docs/results.md that the facts do not
  # hold would be lost at the next `python launch/results.py --page_only`.
  with open(os.path.join(DOCS, 'results.md')) as f:
    assert f.read() == text
