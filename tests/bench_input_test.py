"""The input benchmark runs end to end on a few small JPEGs; both contenders ship the same contract."""
import numpy as np

from alexnet_jax.tools import bench_input


def test_benchmark_measures_every_contender_in_one_run():
  jpegs = bench_input.make_jpegs(4)
  figures = bench_input.run(jpegs, batch_size=4, size=32, rounds=1, seconds=0.2)
  assert set(figures) == {'pipeline', 'pipeline_downsampled', 'pil', 'decode_resize',
                          'decode_crop', 'decode_full', 'write_downsampled'}
  assert all(f['per_core'] > 0 and f['wall'] > 0 for f in figures.values())
  assert 'x the PIL loop' in bench_input.report(figures)
  assert 'down-sampled copy' in bench_input.report(figures)


def test_jpegs_are_imagenet_sized():
  sizes = [len(j) for j in bench_input.make_jpegs(8)]
  assert 80e3 < np.mean(sizes) < 140e3


def test_pil_loop_yields_what_the_pipeline_yields():
  jpegs = bench_input.make_jpegs(2)
  pil = next(bench_input.pil_batches(jpegs, 2, 32))
  assert pil['image'].shape == (2, 32, 32, 3) and pil['image'].dtype == np.uint8
  assert pil['lighting'].shape == (2, 3) and pil['lighting'].dtype == np.float32
