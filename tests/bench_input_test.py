"""The input benchmark runs end to end on a few small JPEGs."""
import ml_collections

from alexnet_jax.tools import bench_input


def test_benchmark_measures_both_pipelines():
  jpegs = bench_input.make_jpegs(4)
  config = ml_collections.ConfigDict(dict(batch_size=4, image_size=32, crop='paper', flip=True,
                                          pca_lighting_std=0.1))
  assert bench_input.bench_tf(jpegs, config, threads=1, seconds=0.2) > 0
  assert bench_input.bench_pil(jpegs, 4, 32, seconds=0.2) > 0
