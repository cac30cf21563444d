"""Every command quoted in README.md and docs/*.md names a module, flags, config keys and repository
files that exist; every relative link points at a file (and heading) that exists.

Parses the sources (regex and importlib of configs/*.py); imports neither JAX nor the tools, and
runs no command. A command is a line of a fenced block, or an inline code span, that starts with
`python -m alexnet_jax...`, `python launch/...`, `python -m pytest`, `sbatch`, `bash launch/...` or
`launch/...` (after `$ `, `VAR=value`, `do `, `&&` or `;`), with backslash continuations joined.
Outputs and user data (runs/..., data/..., photo.jpg, gs://...) are not checked.
"""
import ast
import functools
import glob
import importlib.util
import os
import re
import shlex

from conftest import REPO

DOCS = ['README.md'] + sorted(os.path.relpath(p, REPO)
                              for p in glob.glob(os.path.join(REPO, 'docs', '*.md')))

# absl's own flags (flags, logging and app), valid for every absl program.
ABSL_FLAGS = {'help', 'helpfull', 'helpshort', 'helpxml', 'flagfile', 'undefok', 'logtostderr',
              'alsologtostderr', 'log_dir', 'verbosity', 'v', 'stderrthreshold',
              'showprefixforinfo', 'logger_levels', 'run_with_pdb', 'pdb', 'pdb_post_mortem',
              'run_with_profiling', 'profile_file', 'use_cprofile_for_profiling',
              'only_check_args'}
COMMAND = re.compile(r'(python3? -m alexnet_jax\b|python3? launch/|python3? -m pytest\b|sbatch\b|'
                     r'bash launch/|launch/\S+\.sh\b)')
ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=\S*$')
# Flags whose values are outputs (files the command writes): not checked for existence.
OUTPUT_FLAGS = {'output', 'json', 'logits', 'docs', 'root', 'workdir', 'workdir_root', 'log_dir'}
REPO_PATH = re.compile(r'^(configs|launch|docs|tests|alexnet_jax|\.ci)(/|$)')
DEFINE = re.compile(r"DEFINE_(\w+)\(\s*'(\w+)'")


# --- extraction --------------------------------------------------------------------------------

def _join_continuations(lines):
  """[(first line number, logical line)] with backslash-newline continuations joined."""
  out, buffer, start = [], '', None
  for number, line in lines:
    if start is None:
      start = number
    if line.rstrip().endswith('\\'):
      buffer += line.rstrip()[:-1] + ' '
      continue
    out.append((start, buffer + line))
    buffer, start = '', None
  if buffer:
    out.append((start, buffer))
  return out


def _segments(text):
  """The shell commands of one logical line: split at &&, ;, | and a 'for ... do' head."""
  text = re.sub(r'^\s*\$\s+', '', text)
  parts = re.split(r'\s*(?:&&|\|\||;)\s*|\s\|\s', text)
  return [re.sub(r'^(?:do|then|else)\s+', '', part.strip()) for part in parts]


def extract(markdown: str):
  """[(line number, command)]: the commands in fenced blocks and inline code spans, and lines
  or spans made only of --config.KEY=VALUE flags (returned with the command 'FLAGS')."""
  found = []
  lines = markdown.split('\n')
  fenced, in_fence, prose = [], False, []
  for number, line in enumerate(lines, 1):
    if line.lstrip().startswith('```'):
      in_fence = not in_fence
      prose.append('')
    elif in_fence:
      fenced.append((number, line))
      prose.append('')
    elif line.startswith('    ') and (fenced or not prose or not prose[-1].strip()):
      fenced.append((number, line))  # an indented code block
      prose.append('')
      continue
    else:
      prose.append(line)
    if not in_fence and fenced:
      found += _commands_of_block(fenced)
      fenced = []
  if fenced:
    found += _commands_of_block(fenced)
  text = '\n'.join(prose)
  for match in re.finditer(r'(?<!`)`((?:[^`\n]|\n(?!\s*\n))+)`(?!`)', text):
    span = ' '.join(match.group(1).split())
    number = text.count('\n', 0, match.start()) + 1
    for segment in _segments(span):
      if COMMAND.match(_without_env(segment)):
        found.append((number, segment))
      elif segment.startswith('--config.'):
        found.append((number, 'FLAGS ' + segment))
  return found


def _without_env(segment: str) -> str:
  words = segment.split(' ')
  while words and ENV_ASSIGNMENT.match(words[0]):
    words = words[1:]
  return ' '.join(words)


def _commands_of_block(lines):
  found = []
  for number, logical in _join_continuations(lines):
    for segment in _segments(logical):
      if COMMAND.match(_without_env(segment)):
        found.append((number, segment))
      elif segment.startswith('--config.'):
        found.append((number, 'FLAGS ' + segment))
  return found


# --- what exists -------------------------------------------------------------------------------

def _read(relative: str) -> str:
  with open(os.path.join(REPO, relative)) as f:
    return f.read()


@functools.lru_cache(maxsize=None)
def absl_flags(relative: str) -> dict:
  """{flag name: DEFINE kind} of a program, with those of the alexnet_jax.tools modules it
  imports (layer_profile uses benchmark's; a little loose for a module whose flags are defined
  under its own __main__), and absl's own."""
  source = _read(relative)
  names = {name: kind for kind, name in DEFINE.findall(source)}
  for call in re.findall(r'cli\.define_run_flags\(([^)]*)\)', source):  # cli.py's shared flags
    names.update({'workdir': 'string'} if 'step=False' in call else
                 {'workdir': 'string', 'step': 'string', 'ema': 'bool'})
  for group in re.findall(r'^from alexnet_jax\.tools import ([\w, ]+)', source, re.M):
    for module in group.replace(' ', '').split(','):
      path = f'alexnet_jax/tools/{module}.py'
      if os.path.exists(os.path.join(REPO, path)):
        names = {**absl_flags(path), **names}
  return {**{name: 'builtin' for name in ABSL_FLAGS}, **names}


@functools.lru_cache(maxsize=None)
def argparse_spec(relative: str):
  """({--flag names}, set of choices of the positional arguments, or None) of an argparse script."""
  flags_, choices = {'-h', '--help'}, None
  for node in ast.walk(ast.parse(_read(relative))):
    if not (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'add_argument'
            and node.args and isinstance(node.args[0], ast.Constant)):
      continue
    name = node.args[0].value
    if name.startswith('-'):
      flags_.update(a.value for a in node.args if isinstance(a, ast.Constant))
    else:
      listed = [k.value for k in node.keywords if k.arg == 'choices']
      if listed:
        choices = set(ast.literal_eval(listed[0]))
  return flags_, choices


@functools.lru_cache(maxsize=None)
def load_config(relative: str):
  spec = importlib.util.spec_from_file_location(
      'docs_config_' + re.sub(r'\W', '_', relative), os.path.join(REPO, relative))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def config_key_problem(config_file: str, key: str):
  """None if KEY (a.b.c) is a key of config_file's get_config(), else the problem."""
  if any(part.isupper() or '*' in part or not part for part in key.split('.')):
    return None  # a placeholder: --config.KEY=VALUE, --config.data.*
  node = load_config(config_file)
  walked = []
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node.keys():
      where = '.'.join(walked) or 'the top level'
      return f'--config.{key}: no key {part!r} in {where} of {config_file}'
    walked.append(part)
    node = node[part]
  return None


def _path_problem(value: str):
  value = value.split('#')[0]
  if not REPO_PATH.match(value) or '...' in value or re.search(r'[A-Z]{2,}|<', value):
    return None
  if any(c in value for c in '*?'):
    return None if glob.glob(os.path.join(REPO, value)) else f'{value}: no such file'
  return None if os.path.exists(os.path.join(REPO, value)) else f'{value}: no such file'


# --- checking ----------------------------------------------------------------------------------

def _words(command: str):
  command = re.sub(r'(^|\s)\[+', r'\1', command)  # optional groups: [--dry_run], [--step=N|best]
  command = re.sub(r'\]+(?=\s|$)', '', command)
  words = shlex.split(command, comments=True)
  if '>' in words:
    words = words[:words.index('>')]
  while words and ENV_ASSIGNMENT.match(words[0]):
    words = words[1:]
  return words


def _target(words):
  """(program file or None, config keys' file ('' : from --config), kind, arguments, problems)."""
  if words[:2] == ['python', '-m'] or words[:2] == ['python3', '-m']:
    module = words[2]
    if module == 'pytest':
      return None, None, 'pytest', words[3:], []
    if any(part.isupper() for part in module.split('.')):
      return None, None, None, [], []  # a placeholder: python -m alexnet_jax.tools.NAME
    path = module.replace('.', '/') + '.py'
    if not os.path.exists(os.path.join(REPO, path)):
      return None, None, None, [], [f'no module {module} ({path})']
    source = _read(path)
    if 'define_config_dict' in source:  # the run's saved config: keys of configs/default.py
      return path, 'configs/default.py', 'absl', words[3:], []
    return path, '', 'absl', words[3:], []
  if words[0] in ('python', 'python3', 'bash'):
    script, rest = words[1], words[2:]
  elif words[0] == 'sbatch':
    rest = words[1:]
    while rest and rest[0].startswith('-'):  # sbatch's own options
      rest = rest[1:]
    script, rest = rest[0], rest[1:]
  else:
    script, rest = words[0], words[1:]
  if not os.path.exists(os.path.join(REPO, script)):
    return None, None, None, [], [f'no script {script}']
  if script.endswith('.py'):
    kind = 'argparse' if 'argparse' in _read(script) else 'absl'
    return script, '', kind, rest, []
  # launch/*.sh, launch/*.sbatch: positional arguments, then alexnet_jax.main's flags
  while rest and not rest[0].startswith('-'):
    rest = rest[1:]
  return 'alexnet_jax/main.py', '', 'absl', rest, []


def check(command: str) -> list[str]:
  """The problems of one command (empty: it names only things that exist)."""
  flags_only = command.startswith('FLAGS ')
  try:
    words = _words(command[len('FLAGS '):] if flags_only else command)
  except ValueError as e:  # unbalanced quotes
    return [f'cannot split it as a shell command: {e}']
  if not words:
    return []
  if flags_only:  # a line of --config.KEY=VALUE flags for alexnet_jax.main
    program, config_file, kind, args, problems = ('alexnet_jax/main.py', 'configs/default.py',
                                                  'absl', words, [])
  else:
    program, config_file, kind, args, problems = _target(words)
  if program is None and kind != 'pytest':
    return problems
  known = absl_flags(program) if kind == 'absl' else None
  spec = argparse_spec(program) if kind == 'argparse' else None
  # --config.KEY: the keys of the --config file (main, comm_report, sweep), or of the run's saved
  # config (evaluate, neighbours: configs/default.py's keys)
  takes_config = kind == 'absl' and (bool(config_file) or 'config' in known)
  if config_file == '' and takes_config:
    given = [a.split('=', 1)[1] for a in args if a.startswith('--config=')]
    config_file = given[0] if given else 'configs/default.py'
    if not os.path.exists(os.path.join(REPO, config_file)):
      return problems + [f'--config={config_file}: no such file']
  for arg in args:
    if arg == '--':  # the rest goes to another program
      break
    if arg.startswith('--config.'):
      if takes_config:
        key = arg[len('--config.'):].split('=', 1)[0]
        problems.append(config_key_problem(config_file, key))
      elif kind == 'absl':
        problems.append(f'{arg}: {program} takes no --config')
      continue
    if arg.startswith('--'):
      name, _, value = arg[2:].partition('=')
      if kind == 'absl':
        bare = name[2:] if name.startswith('no') and name not in known else name
        if bare not in known or (bare != name and known[bare] not in ('bool', 'boolean')):
          problems.append(f'--{name}: not a flag of {program}')
      elif kind == 'argparse' and '--' + name not in spec[0]:
        problems.append(f'--{name}: not a flag of {program}')
      if value.split() and name not in OUTPUT_FLAGS:  # --launch_with='launch/x.sh 2 4': its script
        problems.append(_path_problem(value.split()[0]))
      continue
    if arg.startswith('-'):
      continue  # pytest's -q, -k ...
    if kind == 'argparse' and spec[1] is not None and not REPO_PATH.match(arg):
      if arg not in spec[1] and arg not in ('|', '...'):
        problems.append(f'{arg}: not one of {sorted(spec[1])} ({program})')
    problems.append(_path_problem(arg))
  return [p for p in problems if p]


def _doc_problems(relative: str, text: str):
  problems, count = [], 0
  for number, command in extract(text):
    count += 1
    for problem in check(command):
      shown = command[len('FLAGS '):] if command.startswith('FLAGS ') else command
      problems.append(f'{relative}:{number}: {problem}\n    {shown}')
  return problems, count


def test_every_documented_command_names_existing_modules_flags_keys_and_files():
  problems, count = [], 0
  for relative in DOCS:
    found, n = _doc_problems(relative, _read(relative))
    problems += found
    count += n
  assert count > 50, f'only {count} commands found: is the extraction broken?'
  assert not problems, f'{len(problems)} wrong command(s) of {count}:\n' + '\n'.join(problems)


def test_the_checker_catches_a_wrong_key_flag_module_or_file():
  synthetic = '\n'.join([
      'Train:', '', '```',
      'python -m alexnet_jax.main --config=configs/default.py --workdir=runs/a \\',
      '    --config.optimizer.no_such_key=1',
      '$ python -m alexnet_jax.tools.predict --workdir=runs/a --no_such_flag photo.jpg',
      'pip install -r requirements.txt && python -m alexnet_jax.tools.no_such_tool --x=1',
      'python launch/sweep.py --config=configs/no_such_config.py --workdir_root=runs/s',
      '```', '',
      'Or inline: `python -m alexnet_jax.tools.evaluate --workdir=runs/a',
      '--config.data.eval_crop=10`, `--config.model.lrnn=False` and',
      '`python launch/cifar10.py --data=data/cifar10 figure2`.',
  ])
  problems, count = _doc_problems('synthetic.md', synthetic)
  text = '\n'.join(problems)
  assert count == 7, problems
  assert ("synthetic.md:4: --config.optimizer.no_such_key: no key 'no_such_key' in optimizer"
          in text)
  assert 'synthetic.md:6: --no_such_flag: not a flag of alexnet_jax/tools/predict.py' in text
  assert 'synthetic.md:7: no module alexnet_jax.tools.no_such_tool' in text
  assert 'synthetic.md:8: --config=configs/no_such_config.py: no such file' in text
  assert "synthetic.md:11: --config.data.eval_crop: no key 'eval_crop' in data" in text
  assert "synthetic.md:12: --config.model.lrnn: no key 'lrnn' in model" in text
  assert "synthetic.md:13: figure2: not one of" in text
  assert {'fine-tuning-from-torchvisions-weights', 'a-b', 'a-b-1'} == _anchors(
      "## Fine-tuning from torchvision's weights\n### A, b\n## a b\n```\n# not a heading\n```")
  # and the right ones pass
  assert not check('python -m alexnet_jax.tools.predict --workdir=a --noskip_bad --top_k=2 x.jpg')
  assert not check('python -m alexnet_jax.tools.layer_profile --batch 64 --rounds 5 --reps 5')
  assert not check('sbatch --nodes=4 launch/slurm.sbatch --config=configs/cifar10.py --workdir=w '
                   '--config.model.conv1_kernel=5')


# --- links -------------------------------------------------------------------------------------

def _anchors(markdown: str) -> set:
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N repeats."""
  anchors, seen, in_fence = set(), {}, False
  for line in markdown.split('\n'):
    if line.lstrip().startswith('```'):
      in_fence = not in_fence
    heading = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
    if in_fence or not heading:
      continue
    slug = re.sub(r'[^\w\- ]', '', heading.group(1).replace('`', '').lower()).replace(' ', '-')
    anchors.add(slug if slug not in seen else f'{slug}-{seen[slug]}')
    seen[slug] = seen.get(slug, 0) + 1
  return anchors


def test_every_relative_link_and_anchor_exists():
  problems = []
  for relative in DOCS:
    text = _read(relative)
    prose = re.sub(r'```.*?```', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    for match in re.finditer(r'\]\(([^)\s]+)\)', prose):
      link = match.group(1)
      if re.match(r'^[a-z]+:', link):
        continue  # https:, mailto:
      number = prose.count('\n', 0, match.start()) + 1
      path, _, anchor = link.partition('#')
      target = os.path.normpath(os.path.join(os.path.dirname(relative), path)) if path else relative
      if not os.path.exists(os.path.join(REPO, target)):
        problems.append(f'{relative}:{number}: {link}: no such file {target}')
      elif anchor and target.endswith('.md') and anchor not in _anchors(_read(target)):
        problems.append(f'{relative}:{number}: {link}: no heading #{anchor} in {target}')
  assert not problems, '\n'.join(problems)
