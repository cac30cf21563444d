"""inference.load and the Classifier: steps, class names, logits, predict, batching, any device count."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf

from alexnet_jax import checkpoint
from alexnet_jax import classes
from alexnet_jax import inference
from alexnet_jax import workdir as workdir_lib
from alexnet_jax import model as model_lib
from alexnet_jax import preprocess
from conftest import REPO


def _eval_rows(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r for r in map(json.loads, f) if r['split'] == 'eval']


def test_load_takes_the_newest_a_named_or_the_best_step(trained_run):
  workdir, _ = trained_run
  assert inference.load(workdir).step == 6
  assert inference.load(workdir, step=3).step == 3
  rows = _eval_rows(workdir)
  best = max(rows, key=lambda r: (r['top1'], -r['step']))['step']  # Orbax keeps the first best
  assert inference.load(workdir, step='best').step == best
  step_folder = inference.load(os.path.join(workdir, 'checkpoints', '3'))
  assert step_folder.step == 3 and step_folder.class_names == ['class0', 'class1', 'class2', 'class3']


def test_a_workdir_named_by_digits_is_a_workdir_not_a_step_folder(trained_run, tmp_path):
  """runs/42 is read as the run it is: its class names, config and evaluations.jsonl."""
  workdir = str(tmp_path / '42')
  shutil.copytree(trained_run[0], workdir)
  assert workdir_lib.run_dir(workdir) == workdir
  assert workdir_lib.run_dir(os.path.join(workdir, 'checkpoints', '6')) == workdir
  clf = inference.load(workdir)
  assert clf.step == 6 and clf.class_names == ['class0', 'class1', 'class2', 'class3']


def test_bad_paths_and_steps_name_the_problem(trained_run, tmp_path):
  workdir, _ = trained_run
  with pytest.raises(checkpoint.CheckpointError, match='no such workdir'):
    inference.load(str(tmp_path / 'missing'))
  os.makedirs(tmp_path / 'empty')
  with pytest.raises(checkpoint.CheckpointError, match='holds no checkpoint'):
    inference.load(str(tmp_path / 'empty'))
  with pytest.raises(checkpoint.CheckpointError, match=r'no checkpoint of step 4; it has steps \[3, 6\]'):
    inference.load(workdir, step=4)


def test_logits_standardise_uint8_as_training_and_refuse_float_images(trained_run):
  clf = inference.load(trained_run[0])
  images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  model = model_lib.AlexNet(**clf.config.model)
  params = jax.tree.map(np.asarray, clf.params)
  standardised = np.asarray(model_lib.standardize(images))
  expected = np.asarray(model.apply({'params': params}, standardised, train=False))
  np.testing.assert_allclose(clf.logits(images), expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(inference.ImageError, match=r'float32 \(5, 64, 64, 3\): expected uint8'):
    clf.logits(standardised)  # not taken as already standardised


def test_predict_reads_files_and_arrays_as_evaluation_does(trained_run):
  workdir, photos = trained_run
  clf = inference.load(workdir)
  paths = inference.find_images([photos])
  assert len(paths) == 40 and {p.rsplit('.', 1)[1] for p in paths} == {'jpg', 'png', 'bmp', 'gif'}
  # More than PIL_MAX_IMAGES files: tf.data reads them, the eval pipeline's own crop of each file,
  # through the model: the same probabilities.
  assert len(paths) > inference.PIL_MAX_IMAGES
  results = clf.predict(paths, top_k=3)[:4]
  crops = np.stack([preprocess.eval_image(tf.io.read_file(p), size=64).numpy() for p in paths[:4]])
  probs = np.asarray(jax.nn.softmax(clf.logits(crops)))
  # A few files: PIL reads them (pil_images), within its stated pixel tolerance of tf.data's.
  few = clf.predict(paths[:4], top_k=3)
  for result, path, row, pil in zip(results, paths[:4], probs, few):
    assert [p['label'] for p in pil['predictions']] == [p['label'] for p in result['predictions']]
    np.testing.assert_allclose([p['probability'] for p in pil['predictions']],
                               [p['probability'] for p in result['predictions']], atol=1e-3)
    assert result['path'] == path
    labels = [p['label'] for p in result['predictions']]
    assert labels == list(np.argsort(-row, kind='stable')[:3])
    np.testing.assert_allclose([p['probability'] for p in result['predictions']], row[labels],
                               rtol=1e-6)
    assert [p['name'] for p in result['predictions']] == [f'class{k}' for k in labels]
  # An array is taken as the decoded image: the same result as the PNG file it came from.
  png = [p for p in paths if p.endswith('.png')][0]
  array = tf.io.decode_png(tf.io.read_file(png), channels=3).numpy()
  assert (clf.predict([array])[0]['predictions'] ==
          clf.predict([png])[0]['predictions'])


def test_one_compile_per_batch_shape_and_the_last_batch_padded(trained_run):
  clf = inference.load(trained_run[0], batch_size=16)
  images = np.random.default_rng(1).integers(0, 256, (16 * 2 + 3, 64, 64, 3), dtype=np.uint8)
  logits = clf.logits(images)
  assert logits.shape == (35, 4) and clf.compiles == 2  # 16, and 8 (3 padded to a device multiple)
  one_by_one = np.concatenate([clf.logits(images[i:i + 1]) for i in (0, 34)])
  np.testing.assert_allclose(one_by_one, logits[[0, 34]], rtol=1e-5, atol=1e-6)
  clf.logits(images)
  assert clf.compiles == 2  # nothing new


def test_unreadable_images_are_named_or_skipped(trained_run, tmp_path):
  workdir, photos = trained_run
  clf = inference.load(workdir)
  bad = tmp_path / 'notes.jpg'
  bad.write_text('not an image')
  good = inference.find_images([os.path.join(photos, 'class1')])[:2]
  with pytest.raises(inference.ImageError, match='notes.jpg is not a readable image'):
    clf.predict([good[0], str(bad), good[1]])
  results = clf.predict([good[0], str(bad), good[1]], skip_bad=True)
  assert [r['path'] for r in results] == [good[0], str(bad), good[1]]
  assert 'error' in results[1] and 'predictions' in results[2]
  with pytest.raises(inference.ImageError, match='no such file'):
    inference.find_images([str(tmp_path / 'gone.png')])


def test_tiff_and_heic_photos_are_named_by_their_format(trained_run, tmp_path, caplog):
  """Formats phones and scanners write, which TensorFlow does not decode: the error says which."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from alexnet_jax import data_sources  # pylint: disable=g-import-not-at-top
  workdir, _ = trained_run
  tiff = tmp_path / 'scan.tif'
  Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(tiff)
  heic = tmp_path / 'phone.heic'  # an ISO media file's header: size, 'ftyp', brand
  heic.write_bytes(b'\x00\x00\x00\x18ftypheic' + bytes(64))
  assert [inference.unsupported_format(str(p)) for p in (tiff, heic)] == ['TIFF', 'HEIC']
  clf = inference.load(workdir)
  with pytest.raises(inference.ImageError, match='scan.tif is a TIFF image, which is not read here'):
    clf.predict([str(tiff)])
  skipped = clf.predict([str(heic)], skip_bad=True)[0]
  assert skipped['error'].startswith('a HEIC image, which is not read here')
  # A folder walk leaves them out, and says so.
  for name in ('a', 'b'):
    os.makedirs(tmp_path / 'photos' / name)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'photos' / name / '1.png')
  shutil.copy(tiff, tmp_path / 'photos' / 'a' / '2.tif')
  with caplog.at_level('WARNING'):
    _, files = data_sources._list_images(str(tmp_path / 'photos'), str(tmp_path / 'photos'))
  assert len(files) == 2 and '1 TIFF or HEIC files under' in caplog.text


def test_a_run_is_usable_when_its_data_is_gone(trained_run, tmp_path):
  """Class names live in the workdir: the data folder is not read by load or predict."""
  workdir, photos = trained_run
  copy = str(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  # The run's data folder, named in its config.json and in its checkpoints' configs, is gone
  # while the run is loaded and used (moved away, then put back for the other tests).
  moved_photos = str(tmp_path / 'photos')
  os.rename(photos, moved_photos)
  try:
    assert not os.path.exists(photos)
    clf = inference.load(copy)
    assert clf.class_names == ['class0', 'class1', 'class2', 'class3']
    assert len(clf.predict(inference.find_images([moved_photos])[:3])) == 3
  finally:
    os.rename(moved_photos, photos)


def test_imagenet_synsets_have_their_english_names():
  table = classes.imagenet_names()
  labels = tf.io.gfile.GFile(os.path.join(os.path.dirname(__import__('tensorflow_datasets').__file__),
                                          'datasets', 'imagenet2012', 'labels.txt')).read().split()
  assert list(table) == labels  # TFDS's label order: label k is line k
  assert classes.readable(['n01440764', 'n02123045', 'cat']) == ['tench', 'tabby', 'cat']


def test_logits_are_the_same_on_another_device_count(trained_run):
  """A process with 3 devices (not a divisor of the batch) gives this process's 8-device logits."""
  workdir, _ = trained_run
  images = np.random.default_rng(2).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
  here = inference.load(workdir).logits(images)
  script = ('import sys, numpy as np; from alexnet_jax import inference; import jax; '
            'assert jax.local_device_count() == 3; '
            f'images = np.random.default_rng(2).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8); '
            f'np.save(sys.stdout.buffer, inference.load({workdir!r}).logits(images))')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=3')
  out = subprocess.run([sys.executable, '-c', script], cwd=REPO, env=env, capture_output=True,
                       check=True)
  import io  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(np.load(io.BytesIO(out.stdout)), here, rtol=1e-5, atol=1e-6)
