"""Scale-out on Ray: chunks of each video on Ray actors, one model load per actor.

`RayEngine` plugs into `conversion.convert` in place of the local engine, so the output folder is
handled exactly as in a local run (checks, --resume, ``hdrvid.json``, video outputs); only the
frames are computed elsewhere. The driver plans chunks (`windows.plan_chunks`: whole exposure
cycles, decoded with a halo of window // 2 frames they do not emit, so every output frame equals
a single-machine run's) and keeps at most two chunks per actor in flight. Each actor runs
`engine.run_frames` on its chunk and writes the EXRs straight into the output folder, which
must be on storage every machine sees, with the same atomic writes as a local run. An actor that
dies is restarted by Ray and its chunks are run again (frames are rewritten whole, so a chunk
that ran half-way before is harmless).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time

import torch

from hdrvid.engine import build_predictor, check_complete, learn_cycle, log_average, run_frames
from hdrvid.errors import HdrvidError
from hdrvid.exposure import ExposurePattern
from hdrvid.job import (
    CHUNK_FRAMES,
    ConvertOptions,
    Job,
    Progress,
    ProgressEvent,
    Report,
    frame_total,
    model_key,
)
from hdrvid.process import tune_process
from hdrvid.registry import get_spec
from hdrvid.response import load_response
from hdrvid.video import VideoInfo, frame_timestamps
from hdrvid.windows import Chunk, plan_chunks

IN_FLIGHT_PER_WORKER = 2  # one running, one queued: the actor never waits for the driver
RETRIES = 3  # restarts of a dead actor, and runs of a chunk on it


def import_ray():
    try:
        import ray
    except ImportError:
        raise HdrvidError("--ray needs Ray, which is not installed; run: pip install "
                          "'hdrvid[ray]'") from None
    _silence_raylet_errors(ray)
    return ray


def _silence_raylet_errors(ray) -> None:
    """Ray's driver prints the raylet's error messages (such as "Task ChunkWorker.run failed
    ... will be retried" for the chunks of actors we kill on an error) on stdout, which is
    for ``--json``, whatever ``log_to_driver`` says; the errors that matter reach us as
    exceptions. Drop those lines (through a private hook: left alone if Ray changes it)."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "hdrvid_quiet", False):
        return

    def print_to_stdstream(data, *args, **kwargs):
        if data.get("pid") != "raylet":
            original(data, *args, **kwargs)

    print_to_stdstream.hdrvid_quiet = True
    worker.print_to_stdstream = print_to_stdstream


class ChunkWorker:
    """A Ray actor: loads the model once, then converts chunks."""

    def __init__(self, options: ConvertOptions, period: int, threads: int):
        tune_process()  # the actor's process exists only to convert, as the CLI's does
        torch.set_num_threads(threads)
        self.predictor = build_predictor(options, period)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def log_average(self, job: Job) -> float:
        """The log-average luminance of ``job``'s frames, for --scale mid-grey."""
        return log_average(job, self.predictor)

    def run(self, job: Job, chunk: Chunk) -> dict:
        """Convert ``chunk`` of ``job``; returns its frame records, counts and stage times."""
        started = time.perf_counter()
        batch, warning = self.predictor.check_memory(job.info.height, job.info.width,
                                                     job.options.batch_size)
        job = dataclasses.replace(job, options=dataclasses.replace(job.options, batch_size=batch))
        report = Report(job.info.path, job.frames_dir, job.options.model)
        entries: list[dict] = []
        run_frames(job, self.predictor, report, entries, chunk=chunk)
        return {"worker": self.name, "entries": entries, "frames": report.frames,
                "resumed": report.resumed, "stages": report.stages,
                "seconds": time.perf_counter() - started,
                "warnings": self.predictor.warnings + ([warning] if warning else [])
                + report.warnings}


class RayEngine:
    """Runs each video's frames as chunks on Ray actors (GPU actors where the cluster has GPUs).

    address: ``None`` joins the local Ray instance or starts one; ``auto`` or
    ``ray://head:10001`` joins a cluster. workers: actors to start (default: one per GPU, else
    one per CPU). chunk_frames: output frames per chunk (rounded down to whole cycles).
    """

    streams = False  # chunks finish out of order on other machines: videos come from EXRs

    def __init__(self, address: str | None = None, workers: int | None = None,
                 chunk_frames: int = CHUNK_FRAMES, threads_per_worker: int = 1):
        self.ray = import_ray()
        self._started = not self.ray.is_initialized()
        if self._started:
            self._connect(address)
        resources = self.ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.threads = threads_per_worker
        self.workers = workers or self.gpus or max(1, int(resources.get("CPU", 1)) // self.threads)
        self.chunk_frames = chunk_frames
        self.actors: list = []
        self._loaded: tuple | None = None

    def _connect(self, address: str | None) -> None:
        settings = {"include_dashboard": False, "log_to_driver": False,
                    "logging_level": logging.ERROR}
        try:
            if address is None:
                try:  # a Ray instance already running on this machine
                    self.ray.init(address="auto", **settings)
                except ConnectionError:
                    self.ray.init(**settings)
            else:
                self.ray.init(address=address, **settings)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise HdrvidError(f"--ray {address or ''}: cannot connect to Ray ({exc}); check the "
                              "address, or leave it out to start Ray on this machine") from exc

    def __enter__(self) -> RayEngine:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors; shut Ray down if this engine started it."""
        self._kill_actors()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()

    def worker_pids(self) -> list[int]:
        return self.ray.get([actor.pid.remote() for actor in self.actors])

    def prepare(self, info: VideoInfo, pattern: ExposurePattern, options: ConvertOptions
                ) -> tuple[ConvertOptions, list[str]]:
        """Start the actors for this model and cycle (kept across the inputs of a batch)."""
        wanted = model_key(options, pattern)
        if wanted != self._loaded:
            self._kill_actors()
            remote = self.ray.remote(ChunkWorker).options(
                num_cpus=self.threads, num_gpus=1 if self.gpus else 0,
                max_restarts=RETRIES, max_task_retries=RETRIES)
            self.actors = [remote.remote(options, pattern.period, self.threads)
                           for _ in range(self.workers)]
            self._loaded = wanted
        return options, []

    def log_average(self, job: Job) -> float:
        """The log-average luminance of ``job``'s frames (--scale mid-grey), measured by one
        actor before any frame is written."""
        return self._result(self.actors[0].log_average.remote(job))

    def run(self, job: Job, report: Report, entries: list[dict], progress: Progress | None,
            started: float) -> None:
        """Convert ``job``'s chunks on the actors, gathering their records into ``entries``."""
        # chunks seek by timestamp, and those after the start check the cycle against the
        # start's (a dropped frame)
        job = dataclasses.replace(
            job, frame_times=frame_timestamps(job.info.path),
            cycle_signature=learn_cycle(job.info, job.pattern,
                                        load_response(job.options.input_transfer)))
        count = frame_total(job, len(job.frame_times or ()))
        if not count:
            raise HdrvidError(f"{job.info.path}: the container states no frame count, which "
                              "chunking needs; convert it without --ray")
        window = get_spec(job.options.model).window(job.pattern.period)
        todo = plan_chunks(str(job.info.path), count, job.pattern.period, window,
                           self.chunk_frames, job.first)
        shared = self.ray.put(job)
        running: dict = {}  # result ref -> actor index
        load = [0] * len(self.actors)
        try:
            while todo or running:
                while todo and min(load) < IN_FLIGHT_PER_WORKER:
                    slot = load.index(min(load))
                    running[self.actors[slot].run.remote(shared, todo.pop(0))] = slot
                    load[slot] += 1
                (ready,), _ = self.ray.wait(list(running), num_returns=1)
                load[running.pop(ready)] -= 1
                self._gather(self._result(ready), report, entries)
                if progress:
                    progress(ProgressEvent(report.frames, count, time.perf_counter() - started))
        except BaseException:  # an error or Ctrl-C: no frame may be written after this
            self._stop(job.frames_dir, list(running))
            raise
        entries.sort(key=lambda entry: entry["index"])
        check_complete(job, report.frames)

    def _stop(self, frames_dir, running: list) -> None:
        """Kill the actors (the next input starts new ones) and remove the temporary files of
        the frames they were writing; every finished frame was renamed into place whole."""
        self._kill_actors()
        # ray.kill returns at once: the chunks still running end (in an error) only when their
        # actor has gone, and after that nothing can write a temporary file
        if running:
            self.ray.wait(running, num_returns=len(running), timeout=30)
        for partial in frames_dir.glob(".frame_*.tmp"):
            partial.unlink(missing_ok=True)

    def _kill_actors(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors, self._loaded = [], None

    def _result(self, ref) -> dict:
        """A chunk's result; an error in the actor is raised here as it was raised there."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            raise exc.cause if isinstance(exc.cause, HdrvidError) else exc from None
        except self.ray.exceptions.RayActorError as exc:
            raise HdrvidError(f"a Ray worker died {RETRIES + 1} times on one chunk ({exc}); the "
                              "frames written so far are kept: rerun with --resume") from exc

    @staticmethod
    def _gather(result: dict, report: Report, entries: list[dict]) -> None:
        entries += result["entries"]
        report.frames += result["frames"]
        report.resumed += result["resumed"]
        for stage, seconds in result["stages"].items():
            report.stages[stage] = report.stages.get(stage, 0.0) + seconds
        worker = report.workers.setdefault(result["worker"], {"frames": 0, "seconds": 0.0})
        worker["frames"] += result["frames"]
        worker["seconds"] += result["seconds"]
        report.warnings += [w for w in result["warnings"] if w not in report.warnings]
