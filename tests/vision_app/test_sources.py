"""Frame sources on real files, the test pattern, and error cases."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_app.errors import SourceError
from vision_app.sources import (ImageFolderSource, TestPatternSource, VideoFileSource, open_source)


def read_all(src, limit=10_000):
    out = []
    while len(out) < limit:
        img = src.read()
        if img is None:
            break
        out.append(img)
    return out


def test_video_file_reads_every_frame_in_order(media_dir: Path) -> None:
    src = open_source(str(media_dir / "video/bikes_640x272.mp4"))
    assert isinstance(src, VideoFileSource) and not src.live
    frames = read_all(src)
    src.close()
    assert len(frames) == 250
    assert frames[0].shape == (272, 640, 3) and frames[0].dtype == np.uint8
    assert src.fps == pytest.approx(25.0, abs=0.1)
    # consecutive frames of a real video differ (the file is decoded, not one frame repeated)
    assert np.abs(frames[0].astype(int) - frames[100].astype(int)).mean() > 1


def test_image_folder_in_name_order_and_single_image(media_dir: Path, tmp_path: Path) -> None:
    for name in ("b.jpg", "a.png"):
        shutil.copy(media_dir / "scenes" / ("bus.jpg" if name == "b.jpg" else "coffee.png"), tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageFolderSource) and src.frame_count == 2
    frames = read_all(src)
    assert [f.shape for f in frames] == [cv2.imread(str(tmp_path / "a.png")).shape, (1080, 810, 3)]
    glob_src = open_source(str(tmp_path / "*.jpg"))
    assert len(read_all(glob_src)) == 1
    assert len(read_all(open_source(str(media_dir / "scenes/bus.jpg")))) == 1


def test_image_folder_skips_unreadable_but_fails_when_none_readable(tmp_path: Path, media_dir: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    src = open_source(str(tmp_path))
    with pytest.raises(SourceError, match="none of its 1 file"):
        read_all(src)
    shutil.copy(media_dir / "scenes/dog.jpg", tmp_path / "z.jpg")
    src = open_source(str(tmp_path))
    assert len(read_all(src)) == 1 and src.skipped == [str(tmp_path / "broken.jpg")]


def test_test_pattern_moves_and_has_counter() -> None:
    src = open_source("test:320x240@200")
    assert isinstance(src, TestPatternSource) and src.live and src.fps == 200
    a, b = src.read(), src.read()
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("spec, match", [
    ("/no/such/file.mp4", "not found"),
    ("camera:x", "bad camera source"),
    ("test:abc", "bad test source"),
    ("", "empty source"),
])
def test_bad_sources_raise_source_error_naming_the_source(spec: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        open_source(spec)


def test_missing_camera_is_a_clear_source_error() -> None:
    with pytest.raises(SourceError, match=r"camera 'camera:7' cannot be opened.*test:"):
        open_source("camera:7")


def test_corrupt_video_file_is_a_source_error(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="corrupt.mp4"):
        open_source(str(bad))
