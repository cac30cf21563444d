"""The prepare tool: missing-archive message, corrupt images listed."""
import pytest

from alexnet_jax import data_sources
from alexnet_jax import downsample
from alexnet_jax.data_sources import DataError
from alexnet_jax.tools import prepare
from conftest import data_config
from conftest import write_photos


def test_missing_archives_are_named_with_their_folder(tmp_path):
  with pytest.raises(DataError, match=r'ILSVRC2012_img_train.tar \(train\) and '
                                      r'ILSVRC2012_img_val.tar \(validation\).*' + str(tmp_path)):
    prepare.prepare('imagenet2012', manual_dir=str(tmp_path), data_dir=str(tmp_path / 'tfds'))


def test_folder_check_reports_readable_images(tmp_path, capsys):
  write_photos(str(tmp_path / 'photos'), {'a': 2, 'b': 3}, size=(20, 24))
  (tmp_path / 'photos' / 'b' / 'bad.png').write_bytes(b'\x89PNG broken')
  prepare.prepare(f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'), splits=['train'])
  assert 'train: 5 readable images' in capsys.readouterr().out


def test_downsample_for_writes_the_copy_training_then_reuses(tmp_path, capsys):
  write_photos(str(tmp_path / 'photos'), {'a': 2, 'b': 3}, size=(20, 24))
  prepare.prepare(f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'),
                  splits=['train'], downsample_for=16)
  assert 'train: down-sampled copy of 5 images for data.image_size=16 ready' in capsys.readouterr().out
  (copy,) = (tmp_path / 'tfds' / downsample.DOWNSAMPLED_FOLDER).glob('18px_*')
  written = (copy / 'images.bin').stat().st_mtime_ns
  config = data_config(name=f'folder:{tmp_path / "photos"}', data_dir=str(tmp_path / 'tfds'),
                       downsample=True)
  assert data_sources.open_source(config, 'train').num_examples == 5
  assert (copy / 'images.bin').stat().st_mtime_ns == written  # training read it, did not rewrite
