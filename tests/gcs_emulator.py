"""gcp-storage-emulator, started as `python tests/gcs_emulator.py start --host=H --port=P
--in-memory`, with one header added that real Cloud Storage sends and the emulator (2026.7.19)
does not: x-goog-generation on a download. tensorstore reads an object's generation from it, and
without it an Orbax save whose OCDBT manifest is read back fails ("Malformed StorageGeneration").
"""
import runpy

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

if __name__ == '__main__':
  runpy.run_module('gcp_storage_emulator', run_name='__main__')
