"""EXR writing and reading, and the JSON sidecar writer."""

import json
from fractions import Fraction

import numpy as np
import OpenEXR
import pytest

from hdrvid.errors import OutputError
from hdrvid.exr import (
    COMPRESSIONS,
    REC709_CHROMATICITIES,
    ExrSequenceWriter,
    frame_name,
    read_exr,
    write_exr,
    write_json_atomic,
)


def _image(dtype):
    rng = np.random.default_rng(0)
    return (rng.random((20, 30, 3)) * 40).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_write_and_read_exr_pixels(tmp_path, dtype):
    image = _image(dtype)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    write_exr(tmp_path / "a.exr", image, header)
    pixels, _ = read_exr(tmp_path / "a.exr")
    assert pixels.dtype == dtype
    np.testing.assert_array_equal(pixels, image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.exr"]  # the temporary file is gone


def test_read_exr_returns_the_header(tmp_path):
    header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
              "hdrvid:pts": 1234}
    write_exr(tmp_path / "a.exr", _image(np.float16), header)
    _, read_back = read_exr(tmp_path / "a.exr")
    assert read_back["hdrvid:pts"] == 1234
    assert read_back["compression"] == OpenEXR.PIZ_COMPRESSION


def test_sequence_writer(tmp_path, exr_header):
    writer = ExrSequenceWriter(tmp_path, "zips", half=True, fps=Fraction(30000, 1001),
                               attributes={"hdrvid:model": "x"}, workers=2)
    frames = [_image(np.float32) * (i + 1) for i in range(5)]
    for i, frame in enumerate(frames):
        writer.write(i, frame, {"hdrvid:pts": 100 * i})
    writer.close()
    assert sorted(writer.written) == list(range(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == [frame_name(i) for i in range(5)]
    for i, frame in enumerate(frames):
        pixels, _ = read_exr(tmp_path / frame_name(i))
        assert pixels.dtype == np.float16
        np.testing.assert_array_equal(pixels, frame.astype(np.float16))
        header = exr_header(tmp_path / frame_name(i))
        assert header["hdrvid:pts"] == 100 * i
        assert header["hdrvid:model"] == "x"
        assert header["compression"] == COMPRESSIONS["zips"]
        assert header["framesPerSecond"] == Fraction(30000, 1001)
        assert header["chromaticities"] == pytest.approx(REC709_CHROMATICITIES, abs=1e-6)


def test_sequence_writer_rejects_unknown_compression(tmp_path):
    with pytest.raises(OutputError, match="compression"):
        ExrSequenceWriter(tmp_path, "lzma")


def test_sequence_writer_reports_write_failures(tmp_path):
    writer = ExrSequenceWriter(tmp_path / "missing-folder", workers=1)
    writer.write(0, _image(np.float32))
    with pytest.raises(OutputError, match="cannot write"):
        writer.close()


def test_frame_name():
    assert frame_name(0) == "frame_000000.exr"
    assert frame_name(123456) == "frame_123456.exr"


def test_write_json_atomic(tmp_path):
    path = tmp_path / "hdrvid.json"
    write_json_atomic(path, {"status": "running"})
    write_json_atomic(path, {"status": "complete", "frames": [1, 2]})
    assert json.loads(path.read_text()) == {"status": "complete", "frames": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["hdrvid.json"]
