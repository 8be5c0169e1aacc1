"""The memory floor's parts on the bundled sample (fresh processes, default settings)."""

import pytest

from media import SAMPLE_VIDEO
from tool_scripts import load_tool


@pytest.fixture(scope="module")
def bench_floor():
    yield from load_tool("bench_floor")


def test_the_floor_is_the_sum_of_measured_parts(bench_floor):
    result = bench_floor.measure(SAMPLE_VIDEO, "passthrough", [], 30)
    parts = result["parts"]
    assert result["engine"] == "passthrough"
    assert abs(sum(parts.values()) - result["floor_mb"]) < 0.5
    imports, models, decoder, encoder, pictures = parts.values()
    assert 20 < imports < 400, parts
    assert 0 <= models < 50, "passthrough builds no model"
    assert decoder > 1 and encoder > 5, "a decoder and an H.264 encoder hold buffers of their own"
    # 540x960 yuv420p is 0.74 MB a picture (FFmpeg pads a little); 2 windows of 16 new frames plus 8 overlap
    assert "40:" in next(k for k in parts if k.startswith("decoded pictures"))
    assert 40 * 0.74 <= pictures < 40 * 0.9, parts
