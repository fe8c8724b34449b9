"""Video through PyAV: frame-accurate decoding, 8/10-bit, the stream's matrix and range, truncation, encodes.

The test videos are encoded here with PyAV directly (not with the code under test), losslessly
(x264 qp 0, 4:4:4), so that the decoded values can be compared with what went in.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace
from media_files import encode

from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.frame_io import FrameReadError

H, W = 48, 64


def flat(value, h=H, w=W):
    return np.broadcast_to(np.asarray(value, np.float32), (h, w, 3)).copy()


def test_decoding_is_frame_accurate(tmp_path):
    levels = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2]
    path = encode(tmp_path / "clip.mp4", [flat([v, 1 - v, 0.5]) for v in levels])
    assert frame_io.count_video_frames(path) == 6
    got = list(frame_io.iter_video(path, [1, 4]))
    assert [i for i, _ in got] == [1, 4]
    for i, img in got:
        assert img.shape == (H, W, 3) and img.dtype == np.float32
        np.testing.assert_allclose(img[H // 2, W // 2], [levels[i], 1 - levels[i], 0.5], atol=0.01)
    everything = list(frame_io.iter_video(path))
    assert [i for i, _ in everything] == list(range(6))
    with pytest.raises(FrameReadError, match=r"clip\.mp4.*ended at frame 7"):
        list(frame_io.iter_video(path, [7]))


@pytest.mark.parametrize("matrix", [Colorspace.ITU709, Colorspace.ITU601])
@pytest.mark.parametrize("color_range", [ColorRange.MPEG, ColorRange.JPEG])
def test_the_streams_matrix_and_range_are_honoured(tmp_path, matrix, color_range):
    colour = [0.9, 0.2, 0.1]  # saturated: BT.601 and BT.709 disagree on it by several percent
    path = encode(tmp_path / "tagged.mp4", [flat(colour)], matrix=matrix, color_range=color_range)
    (_, img), = frame_io.iter_video(path)
    np.testing.assert_allclose(img[H // 2, W // 2], colour, atol=0.006)
    # the same stream read with the other matrix, or the other range, is visibly off: the test can fail
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        other = Colorspace.ITU601 if matrix == Colorspace.ITU709 else Colorspace.ITU709
        wrong = frame.to_ndarray(format="rgb48le", src_colorspace=other)[H // 2, W // 2] / 65535.0
        assert np.abs(wrong - colour).max() > 0.03
    # (a reader that ignored the range would take the full-range stream as limited: its levels would be stretched)


@pytest.mark.parametrize("height,matrix", [(720, Colorspace.ITU709), (480, Colorspace.ITU601)])
def test_an_untagged_matrix_is_taken_as_players_take_it(tmp_path, height, matrix):
    colour = [0.9, 0.2, 0.1]
    path = encode(tmp_path / "untagged.mp4", [flat(colour, h=height, w=64)], matrix=matrix, tag_matrix=False)
    assert frame_io.probe_video(path).colorspace == "unspecified"
    (_, img), = frame_io.iter_video(path)
    np.testing.assert_allclose(img[height // 2, 32], colour, atol=0.006)


def test_a_transfer_that_is_not_a_display_encoding_is_warned_about(tmp_path, caplog):
    path = encode(tmp_path / "pq.mp4", [flat(0.5)], transfer=16)  # AVCOL_TRC_SMPTE2084 (PQ)
    assert frame_io.probe_video(path).transfer == "smpte2084"
    with caplog.at_level("WARNING"):
        list(frame_io.iter_video(path))
    assert "smpte2084" in caplog.text and "pq.mp4" in caplog.text


def test_10bit_streams_keep_their_levels(tmp_path):
    ramp = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    img = np.repeat(np.repeat(ramp[None, :, None], 8, axis=0), 3, axis=2)
    path = encode(tmp_path / "deep.mp4", [img], pix_fmt="yuv444p10le")
    info = frame_io.probe_video(path)
    assert info.bit_depth == 10 and info.pix_fmt == "yuv444p10le"
    (_, back), = frame_io.iter_video(path)
    assert len(np.unique(back[4, :, 1])) > 600  # 8-bit would give at most 256 levels
    np.testing.assert_allclose(back[4], img[4], atol=2.0 / 876)  # within 2 codes of 10-bit limited range


def test_probe_reports_the_streams_tags(tmp_path):
    path = encode(tmp_path / "p.mov", [flat(0.5)] * 3, color_range=ColorRange.JPEG, rate=Fraction(25))
    info = frame_io.probe_video(path)
    assert (info.codec, info.width, info.height, info.frames, info.fps) == ("h264", W, H, 3, Fraction(25))
    assert (info.colorspace, info.color_range) == ("bt709", "pc")


def test_frames_are_counted_without_a_header_count(tmp_path):
    path = encode(tmp_path / "clip.mkv", [flat(v) for v in (0.2, 0.4, 0.6, 0.8)])
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # Matroska keeps no count: packets are counted
    assert frame_io.count_video_frames(path) == 4


def test_truncated_stream_is_an_error_naming_file_and_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.random((H, W, 3)).astype(np.float32) for _ in range(10)]  # noise: every frame is large
    path = encode(tmp_path / "take.mp4", frames, container_options={"movflags": "faststart"})
    assert frame_io.count_video_frames(path) == 10
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    with pytest.raises(FrameReadError, match=r"take\.mp4") as err:
        list(frame_io.iter_video(path))
    assert "frame" in str(err.value)


def test_a_video_with_no_decodable_frame_is_an_error_everywhere(tmp_path):
    """Issue #31 defect 6: a truncated .mkv counted 0 frames: "nothing to do", exit 0."""
    from click.testing import CliRunner

    from corridorkey_model.pipeline.cli import main

    path = encode(tmp_path / "take.mkv", [flat(v) for v in (0.2, 0.4, 0.6)])
    path.write_bytes(path.read_bytes()[:600])  # the header, no whole frame
    with pytest.raises(FrameReadError, match=r"take\.mkv.*no decodable frame"):
        frame_io.count_video_frames(path)
    for args in (["run", str(path), "--random-init", "--img-size", "64", "--hint", "auto"],
                 ["run", str(path), "--random-init", "--img-size", "64", "--hint", "auto", "--video-out", "h264"],
                 ["farm-job", str(path), "--output", str(tmp_path / "job.yaml"), "--random-init", "--hint", "auto"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "no decodable frame" in result.output, (args, result.output)
        assert "Traceback" not in result.output and "nothing to do" not in result.output
    assert not (tmp_path / "job.yaml").exists() and not (tmp_path / "take_Output").exists()


def test_not_a_video_names_the_file(tmp_path):
    bad = tmp_path / "junk.mov"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(FrameReadError, match="junk.mov"):
        frame_io.count_video_frames(bad)


@pytest.mark.parametrize("codec", list(frame_io.VIDEO_CODECS))
def test_write_video_rate_size_count_and_tags(tmp_path, codec):
    spec = frame_io.VIDEO_CODECS[codec]
    frames = [flat([v, v, v]) for v in (0.1, 0.5, 0.9)]
    path = frame_io.write_video(tmp_path / f"out{spec.extension}", frames, Fraction(30000, 1001), codec)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        assert (cc.width, cc.height, s.average_rate) == (W, H, Fraction(30000, 1001))
        assert cc.pix_fmt[:7] == spec.pix_fmt[:7]  # 4:2:0 / 4:4:4 (ProRes 4444 decodes as 12-bit)
        assert (int(cc.colorspace), int(cc.color_range), int(cc.color_trc)) == (1, 1, 13)  # BT.709, tv, sRGB
        decoded = [f.to_ndarray(format="rgb48le")[H // 2, W // 2, 1] / 65535.0 for f in c.decode(s)]
    np.testing.assert_allclose(decoded, [0.1, 0.5, 0.9], atol=0.01)
    # and our own decoder: ProRes 4444 decodes as a 12-bit stream, read to 16-bit RGB
    assert frame_io.probe_video(path).bit_depth == (12 if codec == "prores" else 8)
    ours = [img[H // 2, W // 2, 1] for _i, img in frame_io.iter_video(path)]
    np.testing.assert_allclose(ours, [0.1, 0.5, 0.9], atol=0.01)
