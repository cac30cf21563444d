"""A stand-in for `gcloud compute tpus tpu-vm ssh|scp` and the TPU metadata server, on one machine.

Worker i of the fake slice is the folder FAKE_TPU_ROOT/worker_i (its HOME); ssh runs the command
there, once per worker and all at once, as gcloud does; every call is appended to FAKE_GCLOUD_LOG.
"""
import contextlib
import glob
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading


class MetadataHandler(http.server.BaseHTTPRequestHandler):
  """GCE metadata: answers instance attributes, only with the Metadata-Flavor header (as GCE)."""
  attributes: dict = {}

  def do_GET(self):  # pylint: disable=invalid-name
    prefix = '/computeMetadata/v1/instance/attributes/'
    key = self.path[len(prefix):] if self.path.startswith(prefix) else None
    if self.headers.get('Metadata-Flavor') != 'Google' or key not in self.attributes:
      self.send_error(403 if key in self.attributes else 404)
      return
    body = str(self.attributes[key]).encode()
    self.send_response(200)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@contextlib.contextmanager
def metadata_server(attributes: dict):
  """Serves `attributes` on a free localhost port; yields (host:port, the live attributes dict)."""
  handler = type('Handler', (MetadataHandler,), {'attributes': attributes})
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    yield f'127.0.0.1:{server.server_port}', attributes
  finally:
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def slice_metadata(workers: int):
  """One metadata server per worker of a slice on 127.0.0.1; yields their addresses."""
  endpoints = ','.join('unknown:unknown:127.0.0.1' for _ in range(workers))
  with contextlib.ExitStack() as stack:
    yield [stack.enter_context(metadata_server(
        {'agent-worker-number': i, 'worker-network-endpoints': endpoints}))[0]
           for i in range(workers)]


def _options(args):
  """(positional arguments, {--name: value}) of a gcloud command line."""
  positional, named = [], {}
  for arg in args:
    if arg.startswith('--'):
      name, _, value = arg.partition('=')
      named[name] = value
    else:
      positional.append(arg)
  return positional, named


def _workers(named):
  count = int(os.environ['FAKE_TPU_WORKERS'])
  worker = named.get('--worker', '0')
  ids = range(count) if worker == 'all' else [int(worker)]
  root = os.environ['FAKE_TPU_ROOT']
  return [(i, os.path.join(root, f'worker_{i}')) for i in ids]


def _remote(path, home):
  return os.path.join(home, path[2:]) if path.startswith('~/') else path


def _copy(sources, target):
  for source in sources:
    destination = target
    if os.path.isdir(target):
      destination = os.path.join(target, os.path.basename(source))
    if os.path.isdir(source):
      shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
      shutil.copy2(source, destination)


def main(argv):
  with open(os.environ['FAKE_GCLOUD_LOG'], 'a') as log:
    log.write(json.dumps(argv) + '\n')
  if argv[:3] != ['compute', 'tpus', 'tpu-vm'] or argv[3] not in ('ssh', 'scp'):
    sys.exit(f'fake gcloud: unsupported command {argv}')
  positional, named = _options(argv[4:])
  if '--zone' not in named:
    sys.exit('ERROR: (gcloud.compute.tpus.tpu-vm) argument --zone: required')
  name, metadata = os.environ['FAKE_TPU_NAME'], os.environ['FAKE_METADATA'].split(',')
  workers = _workers(named)
  if argv[3] == 'ssh':
    if positional != [name]:
      sys.exit(f'ERROR: TPU {positional} NOT_FOUND')
    runs = [subprocess.Popen(['bash', '-c', named['--command']], cwd=home,
                             env=dict(os.environ, HOME=home, GCE_METADATA_IP=metadata[i]))
            for i, home in workers]
    sys.exit(max(run.wait() for run in runs))
  *sources, target = positional
  for _, home in workers:
    if target.startswith(name + ':'):  # up to the workers
      _copy(sources, _remote(target[len(name) + 1:], home))
    else:  # down from the workers
      found = [p for s in sources for p in glob.glob(_remote(s.partition(':')[2], home))]
      if not found or any(not s.startswith(name + ':') for s in sources):
        sys.exit(f'scp: {sources}: No such file or directory')
      _copy(found, target)


if __name__ == '__main__':
  for i in range(int(os.environ.get('FAKE_TPU_WORKERS', '0'))):
    os.makedirs(os.path.join(os.environ['FAKE_TPU_ROOT'], f'worker_{i}'), exist_ok=True)
  main(sys.argv[1:])
