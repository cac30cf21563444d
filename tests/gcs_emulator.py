"""gcp-storage-emulator, started as `python tests/gcs_emulator.py start --host=H --port=P
--in-memory`, with two additions:

- one header that real Cloud Storage sends and the emulator (2026.7.19) does not: x-goog-generation
  on a download. tensorstore reads an object's generation from it, and without it an Orbax save
  whose OCDBT manifest is read back fails ("Malformed StorageGeneration").
- a counter of the request bodies it has received (uploads, as sent: before any decompression),
  read with GET /_emulator/received -> {"bytes": B, "requests": R}.
"""
import runpy
import threading

from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
  try:
    obj = storage.get_file_obj(request.params['bucket_name'], request.params['object_id'])
    response['x-goog-generation'] = str(obj['generation'])
    response['x-goog-metageneration'] = str(obj.get('metageneration', '1'))
  except Exception:  # pylint: disable=broad-except  # a missing object: the handler answers 404
    pass
  return _download(request, response, storage, *args, **kwargs)


objects.download = _download_with_generation  # before the server module builds its routes

from gcp_storage_emulator import server  # pylint: disable=g-import-not-at-top,wrong-import-position

_received = {'bytes': 0, 'requests': 0}
_lock = threading.Lock()  # the server answers each request in a thread of its own
_read_raw_data = server._read_raw_data  # pylint: disable=protected-access


def _counted_read(request_handler):
  data = _read_raw_data(request_handler)
  with _lock:
    _received['bytes'] += len(data or b'')
    _received['requests'] += 1
  return data


def _report(unused_request, response, unused_storage):
  with _lock:
    response.json(dict(_received))


server._read_raw_data = _counted_read  # pylint: disable=protected-access
server.HANDLERS = ((r'^/_emulator/received$', {server.GET: _report}),) + server.HANDLERS


if __name__ == '__main__':
  runpy.run_module('gcp_storage_emulator', run_name='__main__')
