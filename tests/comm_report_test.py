"""comm_report: HLO parsing, and the traffic of data parallel vs the hybrid on a tiny AlexNet."""
import pytest

from alexnet_jax.tools import comm_report
from conftest import tiny_config

HLO = """
  %all-reduce.4 = (f32[1,16]{1,0}, f32[9216,16]{1,0}, f32[]) all-reduce(%a, %b, %c), channel_id=1, replica_groups={{0,4},{1,5},{2,6},{3,7}}, use_global_device_ids=true, to_apply=%add
  %ag = f32[8,9216]{1,0} all-gather(%x), channel_id=2, replica_groups=[2,4]<=[8], dimensions={0}
  %rs = bf16[128]{0} reduce-scatter(%y), channel_id=3, replica_groups=[1,8]<=[8], dimensions={0}
  %ags = (f32[2,4]{1,0}, f32[8,4]{1,0}) all-gather-start(%z), replica_groups=[2,4]<=[8], dimensions={0}
  %agd = f32[8,4]{1,0} all-gather-done(%ags)
  %noop = f32[64]{0} all-reduce(%w), channel_id=4, replica_groups={{0},{1},{2},{3},{4},{5},{6},{7}}, to_apply=%add
  %gte = f32[] get-tuple-element(%all-reduce.4), index=2
"""


def test_collectives_parsed_from_hlo_text():
  report = comm_report.collectives(HLO, num_devices=8)
  assert report['all-reduce']['ops'] == 1  # the one over single-device groups moves nothing
  assert report['all-reduce']['payload_bytes'] == 4 * (16 + 9216 * 16 + 1)
  assert report['all-reduce']['wire_bytes'] == pytest.approx(report['all-reduce']['payload_bytes'])
  assert report['all-gather']['ops'] == 2
  assert report['all-gather']['payload_bytes'] == 4 * 8 * 9216 + 4 * 8 * 4
  assert report['reduce-scatter']['payload_bytes'] == 2 * 128 * 8  # the input: result x group
  assert report['reduce-scatter']['wire_bytes'] == pytest.approx(2 * 128 * 7)


def _report(data: int, model: int) -> dict:
  return comm_report.build_report(tiny_config(**{'mesh.data': data, 'mesh.model': model}))


def test_data_parallel_all_reduces_every_gradient_once():
  report = _report(8, 1)
  assert set(report['collectives']) == {'all-reduce'}
  payload = report['collectives']['all-reduce']['payload_bytes']
  assert 4 * report['params'] <= payload <= 4 * report['params'] + 64  # + the scalar metrics
  assert report['peak_memory_bytes_per_device'] > 4 * report['params']
  assert 'all-reduce' in comm_report.format_report(report)


def test_hybrid_does_not_all_reduce_classifier_gradients():
  """Beyond the conv gradients only activations are all-reduced: FC7's row-split psum forward
  and backward ([B, fc_width] each) and per-example softmax sums (measured: 8512 bytes). FC6
  and FC7 replicated instead add their gradients, 2.4 MB here."""
  report = _report(1, 8)
  batch, width = 16, 64
  conv_bytes = 4 * (report['params'] - report['fc_params'])
  all_reduce = report['collectives']['all-reduce']['payload_bytes']
  assert conv_bytes <= all_reduce <= conv_bytes + 2 * 4 * batch * width + 4 * batch * 8
  features = 4 * batch * 256 * 6 * 6  # conv features gathered for FC6, plus labels and top-k
  assert features < report['collectives']['all-gather']['payload_bytes'] < features + 4 * batch * width


def test_hybrid_reduce_scatters_fc6_input_gradient_instead_of_all_reducing_it():
  report = _report(1, 8)
  features = 4 * 16 * 256 * 6 * 6  # the gathered conv features [B, 9216] in float32
  scatter = report['collectives']['reduce-scatter']
  assert scatter['ops'] == 1 and scatter['payload_bytes'] == features
  conv_bytes = 4 * (report['params'] - report['fc_params'])
  assert report['collectives']['all-reduce']['payload_bytes'] - conv_bytes < features
