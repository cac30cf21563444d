"""The feed benchmark measures the pipeline, the step and the fed step in one run."""
from alexnet_jax.tools import bench_feed


def test_feed_benchmark_reports_every_rate():
  # FC layers 64 wide and 16 JPEGs: what is measured does not need the 61M-parameter model.
  figures = bench_feed.run(batch_size=4, size=64, rounds=1, seconds=0.05, fc_width=64,
                           num_images=16)
  assert set(figures) == {'pipeline', 'step', 'fed step'}
  assert all(rate > 0 for rate in figures.values())
