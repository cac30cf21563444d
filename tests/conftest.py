"""8 virtual CPU devices and the production XLA flags for every test (set before jax is imported
anywhere); shared fixtures and helpers: photo folders, tiny configs and runs, abstract states,
workdir snapshots, CLI runs in the foreground and in the background."""
import atexit
import concurrent.futures
import hashlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from alexnet_jax import compile_cache  # pylint: disable=g-import-not-at-top,wrong-import-position
from alexnet_jax import xla_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

xla_flags.apply()  # the flags main.py and the tools run with: the tested step is the shipped one

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# One persistent JAX compilation cache per test session, in a fresh temporary folder removed at
# the end (ALEXNET_JAX_TEST_CACHE names a lasting one instead): CLI runs of the same tiny config
# load instead of compiling, no test depends on what an earlier session (or another worktree's
# session) left, and no CLI run a test starts writes to ~/.cache (JAX_COMPILATION_CACHE_DIR wins
# over config.compilation_cache_dir; compile_cache_test points its runs elsewhere).
# With pytest-xdist (-n 2), its workers start after this import with this environment, so they share
# the folder that the first process made, and that process removes it.
TEST_CACHE = os.environ.get('ALEXNET_JAX_TEST_CACHE')
if not TEST_CACHE:
  TEST_CACHE = tempfile.mkdtemp(prefix='alexnet_jax_test_cache_')
  atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)
  os.environ['ALEXNET_JAX_TEST_CACHE'] = TEST_CACHE
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', TEST_CACHE)
# With the CLI's size cap, so that this process keeps the cache's access times as the CLI does: an
# entry written without one made every later CLI write fail (its eviction pass reads them all).
# Not the CLI's every-program rule: each write scans the folder, and tests compile thousands of
# small programs; those over JAX's default second (steps, initialisations) are shared.
os.environ.setdefault('JAX_COMPILATION_CACHE_MAX_SIZE', str(compile_cache.MAX_BYTES))


def write_photos(root, classes=4, per_class=10, seed=0, size=(40, 48),
                 formats=('jpg', 'png', 'bmp', 'gif'), drawn=False):
  """root/<class>/<i>.<format>, formats in turn; every image distinct. Returns root.

  classes: a count (folders class0, class1, ...) or {folder name: image count}. By default class k
  is a bright band at its own height plus noise; drawn=True: fake_imagenet's smooth shapes, JPEG
  quality 95 (close to the pixels, for tests that compare decoded images with them).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from alexnet_jax import fake_imagenet  # pylint: disable=g-import-not-at-top
  counts = classes if isinstance(classes, dict) else {f'class{k}': per_class for k in range(classes)}
  rng = np.random.default_rng(seed)
  for label, (name, count) in enumerate(counts.items()):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(count):
      if drawn:
        image = fake_imagenet.draw_image(rng, label + 2 * i, *size, noise=0.0)
      else:
        image = rng.integers(0, 80, size + (3,), dtype=np.uint8)
        band = label * size[0] // len(counts)
        image[band:band + max(2, size[0] // (len(counts) + 1)), :, label % 3] = 250
      Image.fromarray(image).save(os.path.join(root, name, f'{i}.{formats[i % len(formats)]}'),
                                  quality=95 if drawn else 75)
  return root


def exif_turned_jpegs(height=48, width=64) -> dict:
  """{EXIF orientation 1-8: (JPEG as a camera stores it, the upright picture)}, each the same
  height x width picture with no symmetry (red grows to the right, green downwards), stored turned
  or mirrored and tagged with the orientation that turns it back, in both Exif byte orders. The
  upright picture is PIL.ImageOps.exif_transpose's of the decoded JPEG."""
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  yy, xx = np.mgrid[:height, :width]
  picture = np.stack([255 * xx / width, 255 * yy / height, 127 + 100 * np.sin(xx / 9)], -1)
  turns = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180,
           Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_90,
           Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_270]  # exif_transpose's inverses
  found = {}
  for orientation, turn in enumerate(turns, 1):
    image = Image.fromarray(picture.astype(np.uint8))
    exif = Image.Exif()
    exif.endian = '<' if orientation % 2 else '>'
    exif[0x0112] = orientation
    stored = io.BytesIO()
    stored_image = image if turn is None else image.transpose(turn)
    stored_image.save(stored, 'JPEG', quality=95, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(stored.getvalue())))
    found[orientation] = stored.getvalue(), np.asarray(upright.convert('RGB'))
    assert np.abs(found[orientation][1] - picture).mean() < 2  # the table above is right
  return found


def cli_environ(env=None) -> dict:
  """This process's variables, the session's cache and then env (a value None unsets one)."""
  env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': TEST_CACHE,
         'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0', **(env or {})}
  return {key: value for key, value in env.items() if value is not None}


def run_module(module, *args, env=None, timeout=600):
  """python -m MODULE ARGS in the repository root: a CompletedProcess with text output.

  env: variables to set on top of this process's (a value None unsets the variable).
  """
  return subprocess.run([sys.executable, '-m', module, *map(str, args)], cwd=REPO,
                        env=cli_environ(env), capture_output=True, text=True, timeout=timeout)


def run_modules(*calls, env=None, timeout=600) -> list:
  """run_module(*call) of every call at once, their CompletedProcesses in order: runs that do not
  depend on each other overlap (most of a short run is one core importing TensorFlow and JAX)."""
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    return list(pool.map(lambda call: run_module(*call, env=env, timeout=timeout), calls))


def error_line(result) -> str:
  """The one line a failing CLI printed on stderr (asserts it is one line, no traceback)."""
  assert result.returncode != 0, result.stdout[-2000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  return lines[0]


# The tiny run every test trains: 64 px, 64-wide FC layers, 16 synthetic classes, batch 16.
TINY = {'data.name': 'synthetic', 'data.image_size': 64, 'data.batch_size': 16,
        'model.num_classes': 16, 'model.fc_width': 64, 'total_steps': 4, 'log_every_steps': 2,
        'eval_every_steps': 0, 'checkpoint.every_steps': 4}


def tiny_config(**overrides):
  """configs/default.py with TINY and then overrides (dotted keys: **{'data.batch_size': 8})."""
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.update_from_flattened_dict({**TINY, **overrides})
  return config


def tiny_flags(**overrides) -> list[str]:
  """TINY and overrides as the CLI's --config.KEY=VALUE flags."""
  return [f'--config.{key}={value}' for key, value in {**TINY, **overrides}.items()]


def data_config(**overrides):
  """tiny_config's config.data at 16 px, batch 4, with overrides of its keys (name=..., ...)."""
  values = {'image_size': 16, 'batch_size': 4, **overrides}
  return tiny_config(**{f'data.{key}': value for key, value in values.items()}).data


def _folder(data_root, tfds_dir) -> dict:
  """TINY's changes for a folder of photos with 4 classes, held out 10% for eval, batch 8."""
  return {'data.name': f'folder:{data_root}', 'data.data_dir': str(tfds_dir),
          'data.train_split': 'train[:90%]', 'data.eval_split': 'train[90%:]',
          'data.batch_size': 8, 'model.num_classes': 4}


def tiny_folder_config(data_root, tfds_dir, **overrides):
  """tiny_config on a folder of photos (_folder), 6 steps, evaluated and saved every 3 (keep 2)."""
  return tiny_config(**{**_folder(data_root, tfds_dir), 'total_steps': 6, 'log_every_steps': 2,
                        'eval_every_steps': 3, 'checkpoint.every_steps': 3, 'checkpoint.keep': 2,
                        **overrides})


def checkpoint_config(**overrides):
  """tiny_config at batch 8 with 8 classes, 3 steps, a log point each step, a save every 2 (keep 3):
  the checkpoint and fault tests' run, ~0.1 s a step."""
  return tiny_config(**{'data.batch_size': 8, 'model.num_classes': 8, 'total_steps': 3,
                        'log_every_steps': 1, 'checkpoint.every_steps': 2, 'checkpoint.keep': 3,
                        **overrides})


def train_parts(config, devices=None):
  """(mesh, tx, model) as train_and_evaluate builds them, on the given devices."""
  from alexnet_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  from alexnet_jax import optim  # pylint: disable=g-import-not-at-top
  from alexnet_jax import parallel  # pylint: disable=g-import-not-at-top
  mesh = parallel.make_mesh(config.mesh, devices=devices)
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch=4,
                                 total_steps=config.total_steps)
  return mesh, optim.make_optimizer(config.optimizer, schedule), model_lib.build(config.model)


def abstract_state(config, devices=None):
  """The TrainState as ShapeDtypeStructs placed on the mesh: nothing computed or compiled."""
  from alexnet_jax import train_step  # pylint: disable=g-import-not-at-top
  mesh, tx, model = train_parts(config, devices)
  return train_step.abstract_train_state(model, tx, mesh, image_size=config.data.image_size,
                                         seed=config.seed)[0]


def snapshot(root):
  """{path: (size, mtime_ns, sha1)} of every file under root."""
  result = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        digest = hashlib.sha1(f.read()).hexdigest()
      stat = os.stat(path)
      result[path] = (stat.st_size, stat.st_mtime_ns, digest)
  return result


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def main_command(workdir, **values) -> list[str]:
  """python -m alexnet_jax.main on configs/default.py with values as --config.KEY=VALUE flags."""
  return [sys.executable, '-m', 'alexnet_jax.main', '--config=configs/default.py',
          f'--workdir={workdir}'] + [f'--config.{key}={value}' for key, value in values.items()]


def folder_run_command(workdir, data_root, **overrides) -> list[str]:
  """main_command of TINY on a folder of photos (_folder; write_photos': 36 train images, 4 steps
  an epoch), dropout on, 12 steps, a log point each, evaluated every 5, saved every 3 (keep 2).
  Run it with FOLDER_RUN_ENV, as folder_reference_run is."""
  tfds_dir = os.path.join(os.path.dirname(data_root), 'tfds')  # not inside: it would be a class
  return main_command(workdir, **{**TINY, **_folder(data_root, tfds_dir), 'total_steps': 12,
                                  'log_every_steps': 1, 'eval_every_steps': 5,
                                  'checkpoint.every_steps': 3, 'checkpoint.keep': 2, **overrides})


# folder_run_command's runs on 2 devices, not 8 (the last flag counts): the batch still split, far
# fewer programs to compile in each of their processes. What they test is an interrupted run's
# numbers against an uninterrupted one's, on the same devices.
FOLDER_RUN_ENV = {'XLA_FLAGS': os.environ['XLA_FLAGS'] + ' --xla_force_host_platform_device_count=2'}


def start(command, log_path, env=None):
  """Starts command in the repository root with the session's compilation cache, its output to
  log_path (a file, not a pipe: absl logs a lot); env as run_module's."""
  with open(log_path, 'w') as log:
    return subprocess.Popen(command, cwd=REPO, env=cli_environ(env), stdout=log,
                            stderr=subprocess.STDOUT)


def wait_until(process, done, what, log_path, timeout=300):
  """Polls done() until it is true; kills the process and fails with its log's tail if it exits
  or the timeout passes first."""
  deadline = time.time() + timeout
  while not done():
    if process.poll() is not None or time.time() > deadline:
      process.kill()
      with open(log_path) as f:
        raise AssertionError(f'no {what} (exit {process.poll()}):\n{f.read()[-3000:]}')
    time.sleep(0.05)


def finish(process, log_path, timeout=300):
  """(exit status, log text) once the process ends; killed if it runs past timeout."""
  try:
    code = process.wait(timeout)
  except subprocess.TimeoutExpired:
    process.kill()
    raise
  with open(log_path) as f:
    return code, f.read()


def metrics_records(workdir, *, being_written=False):
  """The records of workdir/metrics.jsonl, each line read strictly; being_written: but a line
  being written (or torn by a kill), and none before the file exists."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not being_written:
    with open(path) as f:
      return [json.loads(line) for line in f]
  if not os.path.exists(path):
    return []
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  return [json.loads(line) for line in lines[:-1] if line.strip()]


def _made_once(tmp_path_factory, name, make):
  """make(root folder) -> JSON-able result, made once per test session: with pytest-xdist, in a
  folder all its workers share (the first to ask makes it while the others wait on a lock, then
  they read its result), so that a session fixture costs one worker its making, not each of them."""
  if not os.environ.get('PYTEST_XDIST_WORKER'):
    return make(tmp_path_factory.mktemp(name))
  import fcntl  # pylint: disable=g-import-not-at-top
  shared = tmp_path_factory.getbasetemp().parent  # the session's, above each worker's own
  root, result = shared / name, shared / f'{name}.json'
  with open(shared / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, an exception included
    if not result.exists():
      shutil.rmtree(root, ignore_errors=True)  # what a failed try left
      root.mkdir()
      made = make(root)
      result.write_text(json.dumps(made))
      return made
  return json.loads(result.read_text())


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory):
  """(workdir, photos folder): a tiny run trained 6 steps, evaluated and saved at steps 3 and 6.
  Read only (every xdist worker reads the same one)."""
  from alexnet_jax import train  # pylint: disable=g-import-not-at-top

  def make(root):
    photos = write_photos(str(root / 'photos'))
    workdir = str(root / 'run')
    train.train_and_evaluate(tiny_folder_config(photos, root / 'tfds'), workdir)
    return workdir, photos
  return tuple(_made_once(tmp_path_factory, 'trained_run', make))


@pytest.fixture(scope='session')
def folder_reference_run(tmp_path_factory):
  """(photos folder, workdir): folder_run_command's 12 steps through the CLI, never interrupted, on
  write_photos' JPEGs and PNGs: what an interrupted run of the same command must log. Read only."""

  def make(root):
    photos = write_photos(str(root / 'photos'), formats=('jpg', 'png'))
    workdir, log = str(root / 'reference'), root / 'reference.log'
    local = {**dict.fromkeys(GCS_EMULATOR_VARIABLES), **FOLDER_RUN_ENV}  # gcs_emulator up or not
    code, text = finish(start(folder_run_command(workdir, photos), log, local), log)
    assert code == 0, text[-3000:]
    return photos, workdir
  return tuple(_made_once(tmp_path_factory, 'folder_reference_run', make))


def torchvision_alexnet(num_classes=1000, width=4096, seed=0):
  """torchvision's AlexNet built from torch.nn under torchvision's module names (its wheel does
  not load beside the CPU torch here), with PyTorch's default initialisation."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  net = nn.Module()
  net.features = nn.Sequential(
      nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
      nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
      nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
      nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
  net.avgpool = nn.AdaptiveAvgPool2d(6)
  net.classifier = nn.Sequential(
      nn.Dropout(), nn.Linear(256 * 36, width), nn.ReLU(), nn.Dropout(), nn.Linear(width, width),
      nn.ReLU(), nn.Linear(width, num_classes))
  net.forward = lambda x: net.classifier(torch.flatten(net.avgpool(net.features(x)), 1))
  return net.eval()


@pytest.fixture(scope='session')
def imported_torchvision(tmp_path_factory):
  """(torch module, its .pth, the workdir tools.import_torchvision wrote from it): torchvision's
  layout with 10 classes and FC layers 64 wide; read only."""
  import torch  # pylint: disable=g-import-not-at-top

  def make(root):
    weights = str(root / 'alexnet.pth')
    torch.save(torchvision_alexnet(num_classes=10, width=64).state_dict(), weights)
    workdir = str(root / 'imported')
    result = run_module('alexnet_jax.tools.import_torchvision', f'--weights={weights}',
                        f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    return weights, workdir
  weights, workdir = _made_once(tmp_path_factory, 'torchvision', make)
  net = torchvision_alexnet(num_classes=10, width=64)
  net.load_state_dict(torch.load(weights))  # the saved weights themselves
  return net, weights, workdir


GCS_BUCKET = 'bucket'  # tensorstore wants 3+ characters
GCS_EMULATOR_VARIABLES = ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL', 'EPATH_USE_TF',
                          'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT')


@pytest.fixture(scope='module')
def gcs_emulator():
  """{env variables} pointing gcsfs and tensorstore at a fresh in-memory Cloud Storage emulator
  (tests/gcs_emulator.py) that has GCS_BUCKET; set in os.environ too while the module runs."""
  try:
    for name in ('gcp_storage_emulator', 'gcsfs'):  # the server's, and gs:// paths' (paths.py)
      importlib.import_module(name)
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=g-import-not-at-top
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip(f'the Cloud Storage emulator cannot be imported ({e}): pip install -r '
                'requirements-dev.txt')
  port = free_port()
  server = subprocess.Popen([sys.executable, os.path.join(REPO, 'tests', 'gcs_emulator.py'),
                             'start', '--host=127.0.0.1', f'--port={port}', '--in-memory'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  url = f'http://127.0.0.1:{port}'
  env = dict(zip(GCS_EMULATOR_VARIABLES, (url, url, 'false', 'false')))
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    deadline = time.time() + 30
    while True:
      try:
        socket.create_connection(('127.0.0.1', port), 0.2).close()
        break
      except OSError:
        assert server.poll() is None and time.time() < deadline, 'the emulator did not start'
        time.sleep(0.1)
    client = storage.Client(project='test', credentials=AnonymousCredentials())
    for bucket in (GCS_BUCKET, 'my-bucket'):  # README's (tpu_pod_test)
      client.create_bucket(bucket)
    yield env
  finally:
    server.kill()
    server.wait()
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


@pytest.fixture(scope='session')
def slurm(tmp_path_factory):
  """A one-node SLURM cluster on this machine, up for the session: a tests/slurm_cluster.Cluster,
  whose .env (SLURM_CONF) points sbatch, squeue, scancel and scontrol at it."""
  from tests import slurm_cluster  # pylint: disable=g-import-not-at-top
  if missing := slurm_cluster.missing():
    pytest.skip(f'SLURM is not installed (no {", ".join(missing)}): apt-get install slurm-wlm '
                'munge, as README\'s test command does')
  if os.geteuid() != 0:
    pytest.skip('slurmd starts jobs as their owners, so it runs as root: run the SLURM tests as '
                'root, as .ci/run does')
  cluster = slurm_cluster.Cluster(str(tmp_path_factory.mktemp('slurm')))
  try:
    cluster.start()
    yield cluster
  finally:
    cluster.stop()


# Session fixtures whose users run in one pytest-xdist worker (--dist=loadgroup): the SLURM of the
# slurm fixture (two clusters on one machine would compete for its cores). Grouping the users of
# imported_torchvision and folder_reference_run too measured 982 s against 912 s without: it
# unbalanced the workers more than making each run once saved (they are made once by _made_once).
_GROUPED_FIXTURES = ('slurm',)


def _uses_a_module_fixture(item) -> bool:
  info = getattr(item, '_fixtureinfo', None)
  return bool(info) and any(defs and defs[-1].scope == 'module'
                            for defs in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the marks into the test ids
def pytest_collection_modifyitems(items):
  for item in items:
    used = [f for f in _GROUPED_FIXTURES if f in getattr(item, 'fixturenames', ())]
    if used:
      item.add_marker(pytest.mark.xdist_group(used[0]))
    elif _uses_a_module_fixture(item) and not item.get_closest_marker('xdist_group'):
      # A module's users of its module fixtures in one worker too: split over two, each made them
      # (multihost_test's three runs, benchmark_test's three tool runs: ~100 and ~40 CPU-s again).
      item.add_marker(pytest.mark.xdist_group(item.module.__name__))
