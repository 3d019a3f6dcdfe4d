import av
import numpy as np
import pytest
from conftest import moving_squares

from posetransfer.errors import VideoError
from posetransfer.video import probe, read_frames, write_h264


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "fps"),
    [
        ("clip.mp4", "libx264", "yuv420p", 24.0),
        ("clip.webm", "libvpx-vp9", "yuv420p", 30.0),
        ("clip.avi", "mjpeg", "yuvj420p", 5.0),
        ("clip.mov", "libx264", "yuv420p", 60.0),
        ("clip.mkv", "mpeg4", "yuv420p", 30000 / 1001),
    ],
)
def test_decodes_common_containers_with_count_and_fps(make_video, name, codec, pix_fmt, fps):
    source = moving_squares(7)
    path = make_video(name, source, fps=fps, codec=codec, pix_fmt=pix_fmt)
    info = probe(path)
    frames = list(read_frames(path))
    assert len(frames) == 7
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert (info.width, info.height) == (128, 96)
    assert frames[0].shape == (96, 128, 3) and frames[0].dtype == np.uint8
    # Lossy codecs: the decoded frames resemble what was encoded.
    assert np.abs(frames[3].astype(int) - source[3]).mean() < 12


def test_portrait_video_keeps_its_orientation(make_video):
    frames = [np.rot90(image).copy() for image in moving_squares(3)]
    path = make_video("portrait.mp4", frames)
    assert (probe(path).width, probe(path).height) == (96, 128)
    assert next(read_frames(path)).shape == (128, 96, 3)


def test_h264_writer_makes_a_browser_playable_mp4(tmp_path):
    path = tmp_path / "out.mp4"
    odd = [np.full((33, 47, 3), 10 * i, np.uint8) for i in range(5)]
    assert write_h264(path, odd, fps=12.5) == 5
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (48, 34)
    assert len(list(read_frames(path))) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_h264_writer_is_reproducible(tmp_path):
    frames = moving_squares(8)
    write_h264(tmp_path / "a.mp4", frames, fps=24)
    write_h264(tmp_path / "b.mp4", frames, fps=24)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_missing_empty_and_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(VideoError, match="video file not found"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty.mp4: video file is empty \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match=r"text\.mp4: not a readable video") as error:
        probe(tmp_path / "text.mp4")
    assert "\n" not in str(error.value)


def test_video_without_decodable_frames(tmp_path, make_video):
    good = make_video("good.mp4", moving_squares(20, 256, 256)).read_bytes()
    # Keep the container header, destroy every byte of frame data after it.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(good[:48] + bytes(len(good) - 48))
    with pytest.raises(VideoError, match=r"broken\.mp4: "):
        probe(broken)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="has no video stream"):
        probe(path)
