"""Scale-out on Ray: chunk planning, seeking decode, and conversions on a local Ray instance with
2 CPU workers that equal a single-process run bit for bit."""

import itertools
import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error, render_clip
from hypothesis import given
from hypothesis import strategies as st

from hdrvid import ConvertOptions, convert
from hdrvid.cli import main
from hdrvid.exr import frame_name, read_exr
from hdrvid.video import frame_timestamps, read_frames
from hdrvid.windows import plan_chunks, sliding_windows

FRAMES = 16


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- chunks ------------------------------------------------------------------------------------

@given(count=st.integers(1, 60), period=st.sampled_from([2, 3]),
       radius=st.integers(1, 3), per_chunk=st.integers(1, 20))
def test_chunk_windows_are_the_whole_videos_windows(count, period, radius, per_chunk):
    """Windows built inside each chunk (from its frames and halo only) equal those of one pass
    over the whole video; chunks start on the video's phase and cover every frame once."""
    size = max(2 * radius + 1, 2 * period - 1)  # every model's window spans a cycle each side
    if count < period:
        return
    whole = {w.center: (w.indices, w.items) for w in sliding_windows(range(count), size, period)}
    chunks = plan_chunks("clip.mp4", count, period, size, per_chunk)
    assert chunks[0].first == 0 and chunks[-1].last == count
    assert all(c.first % period == 0 and c.halo == size // 2 for c in chunks)
    assert all(a.last == b.first for a, b in itertools.pairwise(chunks))
    for chunk in chunks:
        frames = range(chunk.decode_start, min(chunk.decode_stop, count))
        got = {w.center: (w.indices, w.items)
               for w in chunk.windows(sliding_windows(frames, size, period))}
        assert list(got) == list(range(chunk.first, chunk.last))
        assert got == {c: whole[c] for c in got}


def _small_gop_clip(path, frames: int = 24):
    """H.264 with a keyframe every 6 frames and B-frames, so that seeking is really used."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"bf": "2", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 6
        rng = np.random.default_rng(0)
        for i in range(frames):
            image = np.full((48, 64, 3), 8 * i, np.uint8) + rng.integers(0, 8, (48, 64, 3),
                                                                          dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("start", [1, 5, 6, 7, 13, 22])
def test_reading_from_a_frame_seeks_and_equals_decoding_from_the_start(tmp_path, start):
    clip = tmp_path / "gop.mp4"
    _small_gop_clip(clip)
    stamps = frame_timestamps(clip)
    assert len(stamps) == 24 and stamps == sorted(stamps)
    whole = list(read_frames(clip))
    part = list(read_frames(clip, start=start, max_frames=start + 4, timestamps=stamps))
    assert [f.index for f in part] == list(range(start, min(start + 4, 24)))
    for frame in part:
        assert frame.pts == whole[frame.index].pts
        np.testing.assert_array_equal(frame.rgb, whole[frame.index].rgb)


# --- on Ray ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance on loopback with 2 CPUs for the module (started once: ~5 s)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """A 2-exposure clip and its single-process conversion (merge: bit-exact across processes
    with different torch thread counts, which the learned models are not)."""
    folder = tmp_path_factory.mktemp("cluster")
    clip = render_clip(folder / "clip.mp4", (1, 8), FRAMES, width=96, height=64)
    report = convert(clip.path, folder / "single", ConvertOptions(model="merge"))
    assert report.frames == FRAMES
    return clip, folder / "single"


def _assert_same_frames(folder, reference):
    for i in range(FRAMES):
        np.testing.assert_array_equal(read_exr(folder / frame_name(i))[0],
                                      read_exr(reference / frame_name(i))[0])
    ours, theirs = (json.loads((f / "hdrvid.json").read_text()) for f in (folder, reference))
    assert ours["status"] == "complete"
    assert ours["frames"] == theirs["frames"]  # indices, timestamps, exposures


def test_two_ray_workers_equal_a_single_process_run(ray_local, single_run, tmp_path):
    clip, single = single_run
    out = tmp_path / "ray"
    result = run("convert", clip.path, "-m", "merge", "-o", out, "--ray", "--ray-workers", "2",
                 "--chunk-frames", "5", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout.splitlines()[-1])
    # 5 frames per chunk round down to 4 (whole cycles): 4 chunks, spread over both workers
    assert final["frames"] == FRAMES and len(final["workers"]) == 2
    assert sum(w["frames"] for w in final["workers"].values()) == FRAMES
    _assert_same_frames(out, single)


def test_a_part_on_ray_equals_those_frames_of_a_single_run(ray_local, single_run, tmp_path):
    """--start 3 --frames 7 in chunks of 2 frames: the chunks start off the cycle's phase and
    the last is shorter than a cycle, and each frame still equals the whole run's."""
    clip, single = single_run
    out = tmp_path / "ray"
    result = run("convert", clip.path, "-m", "merge", "-o", out, "--ray", "--ray-workers", "2",
                 "--chunk-frames", "2", "--start", "3", "--frames", "7", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("frame_*.exr")) == [frame_name(i) for i in range(3, 10)]
    for i in range(3, 10):
        np.testing.assert_array_equal(read_exr(out / frame_name(i))[0],
                                      read_exr(single / frame_name(i))[0])
    ours, theirs = (json.loads((f / "hdrvid.json").read_text()) for f in (out, single))
    assert ours["frames"] == theirs["frames"][3:10]


def test_mid_grey_on_ray_equals_a_single_process_run(ray_local, single_run, tmp_path):
    """The --scale mid-grey factor is measured by one actor before any chunk is written."""
    clip, _ = single_run
    local, ray = tmp_path / "local", tmp_path / "ray"
    merge_run = ("convert", clip.path, "-m", "merge", "--scale", "mid-grey")
    assert run(*merge_run, "-o", local, "-q").exit_code == 0
    result = run(*merge_run, "-o", ray, "--ray", "--ray-workers", "2", "--chunk-frames", "4", "-q")
    assert result.exit_code == 0, result.output
    _assert_same_frames(ray, local)
    factors = [json.loads((f / "hdrvid.json").read_text())["scale_factor"] for f in (local, ray)]
    assert factors[0] == factors[1] != 1.0


def test_a_killed_worker_has_its_chunk_retried(ray_local, single_run, tmp_path):
    from hdrvid.cluster import RayEngine

    clip, single = single_run
    killed = []
    with RayEngine(workers=2, chunk_frames=2) as engine:

        def kill_once(event):  # after the first of 8 chunks: the others are queued or running
            if not killed:
                os.kill(engine.worker_pids()[0], signal.SIGKILL)
                killed.append(event.done)

        report = convert(clip.path, tmp_path / "ray", ConvertOptions(model="merge"),
                         progress=kill_once, engine=engine)
    assert killed and killed[0] < FRAMES
    assert report.frames == FRAMES
    _assert_same_frames(tmp_path / "ray", single)


def test_resume_on_ray_redoes_only_missing_and_damaged_frames(ray_local, single_run, tmp_path):
    clip, single = single_run
    out = tmp_path / "ray"
    out.mkdir()
    for i in range(FRAMES):
        (out / frame_name(i)).write_bytes((single / frame_name(i)).read_bytes())
    (out / "hdrvid.json").write_text((single / "hdrvid.json").read_text())
    (out / frame_name(3)).unlink()
    damaged = (out / frame_name(9)).read_bytes()
    (out / frame_name(9)).write_bytes(damaged[: len(damaged) // 2])
    result = run("convert", clip.path, "-m", "merge", "-o", out, "--ray", "--ray-workers", "2",
                 "--chunk-frames", "4", "--resume", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout.splitlines()[-1])
    assert final["resumed"] == FRAMES - 2
    _assert_same_frames(out, single)


def test_ray_missing_says_how_to_install(clip2, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = run("convert", clip2.path, "-o", tmp_path / "out", "--ray")
    assert_one_line_error(result, "--ray needs Ray", "pip install 'hdrvid[ray]'")


def test_a_bare_ray_flag_does_not_swallow_an_input(clip2, tmp_path):
    result = run("convert", "--ray", clip2.path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "not a Ray address" in result.stderr and "--ray=ADDRESS" in result.stderr


def test_several_inputs_with_other_cycles_on_ray(ray_local, single_run, tmp_path):
    """A 2- then a 3-exposure input: the actors are reloaded for the new cycle, each output
    folder equals its single-process run, and 3-exposure chunks start on whole cycles."""
    clip2, single2 = single_run
    clip3 = render_clip(tmp_path / "three.mp4", (1, 4, 16), FRAMES, width=96, height=64, seed=4)
    single3 = tmp_path / "single3"
    assert convert(clip3.path, single3, ConvertOptions(model="merge")).frames == FRAMES
    out = tmp_path / "ray"
    result = run("convert", clip2.path, clip3.path, "-m", "merge", "-o", out, "--ray",
                 "--ray-workers", "2", "--chunk-frames", "7", "-q")
    assert result.exit_code == 0, result.output
    _assert_same_frames(out / "clip", single2)
    _assert_same_frames(out / "three", single3)


def test_a_dropped_frame_is_caught_by_the_chunk_it_falls_in(ray_local, tmp_path):
    """Chunks check the exposure cycle against the one learned at the clip's start: a dropped
    frame at 30 stops the run with the local run's one-line error (the chunk that sees it
    reports where its own check began to fail), and no temporary file is left."""
    from hdrvid.encode import VideoWriter
    from hdrvid.synth import expose, procedural_scene

    scene = list(procedural_scene(40, 128, 96, seed=9))
    times = [1, 8] * 15 + [8, 1] * 5  # frames 0-29 low/high, then high/low
    path = tmp_path / "dropped.mp4"
    with VideoWriter(path, 128, 96) as writer:
        for hdr, t in zip(scene, times):
            writer.write(expose(hdr, t))
    out = tmp_path / "out"
    result = run("convert", path, "-o", out, "-m", "reference", "--ray", "--ray-workers", "2",
                 "--chunk-frames", "8", "-q")
    assert_one_line_error(result, "dropped.mp4: the exposure cycle changes at frame 3")
    assert json.loads((out / "hdrvid.json").read_text())["status"] == "failed"
    assert not list(out.glob(".*.tmp"))
