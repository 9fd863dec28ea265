"""OpenEXR files: every EXR read and write (the only module that imports OpenEXR).

EXR frames are written by a pool of threads (OpenEXR compresses with the GIL released), each to a
temporary name and renamed when complete, so a frame that exists is a whole frame. Reading
(`read_exr`, `read_exr_header`) turns a damaged file into a one-line error. `write_json_atomic`
writes the sidecar beside the frames the same way: a temporary name, then a rename.
"""

from __future__ import annotations

import fractions
import io
import json
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import OpenEXR

from hdrvid.errors import OutputError
from hdrvid.primaries import CHROMATICITIES

COMPRESSIONS = {
    "none": OpenEXR.NO_COMPRESSION, "rle": OpenEXR.RLE_COMPRESSION,
    "zips": OpenEXR.ZIPS_COMPRESSION, "zip": OpenEXR.ZIP_COMPRESSION,
    "piz": OpenEXR.PIZ_COMPRESSION, "pxr24": OpenEXR.PXR24_COMPRESSION,
    "b44": OpenEXR.B44_COMPRESSION, "b44a": OpenEXR.B44A_COMPRESSION,
    "dwaa": OpenEXR.DWAA_COMPRESSION, "dwab": OpenEXR.DWAB_COMPRESSION,
}
REC709_CHROMATICITIES = CHROMATICITIES["rec709"]
BT2020_CHROMATICITIES = CHROMATICITIES["bt2020"]
# SMPTE ST 2065-4 (the ACES image container) allows no compression; OpenEXR's own ACES file
# API also writes PIZ and B44A, which Resolve and Nuke read, but such files are not containers
ACES_CONTAINER_COMPRESSIONS = ("none", "piz", "b44a")
FRAME_PATTERN = "frame_{:06d}.exr"


def frame_name(index: int) -> str:
    return FRAME_PATTERN.format(index)


def primaries_header(primaries: str, compression: str, half: bool) -> tuple[dict, list[str]]:
    """Header entries of EXRs holding linear RGB in ``primaries`` (a name in
    `hdrvid.primaries.CHROMATICITIES`), and warnings.

    ACES2065-1 files follow the ACES image container (SMPTE ST 2065-4): half float, scanlines,
    R, G, B, the AP0 chromaticities and ACES white, ``acesImageContainerFlag`` 1 and
    ``adoptedNeutral``; the flag is written only for uncompressed files, which alone conform.
    """
    header = {"chromaticities": CHROMATICITIES[primaries]}
    if primaries != "aces2065-1":
        return header, []
    if not half:
        raise OutputError("--primaries aces2065-1 writes ACES containers (SMPTE ST 2065-4), which "
                          "are half float; drop --float32 or use --primaries acescg")
    if compression not in ACES_CONTAINER_COMPRESSIONS:
        raise OutputError(f"--primaries aces2065-1 with --compression {compression}: ACES files "
                          "take none (an SMPTE ST 2065-4 container), piz or b44a")
    header["adoptedNeutral"] = np.array(CHROMATICITIES[primaries][6:], np.float32)
    if compression == "none":
        header["acesImageContainerFlag"] = 1
        return header, []
    note = (f"ACES2065-1 EXRs with {compression} compression are not SMPTE ST 2065-4 "
            "containers (no acesImageContainerFlag); use --compression none for those")
    return header, [note]


def stored_pixels(hdr: np.ndarray, dtype: type = np.float16,
                  matrix_t: np.ndarray | None = None) -> np.ndarray:
    """The pixels `ExrSequenceWriter` stores for linear ``hdr`` (H, W, 3): ``hdr @ matrix_t``
    in float32 (its matrix, transposed: a change of primaries and the --scale factor), if
    any, then ``dtype`` (float16 for half EXRs)."""
    if matrix_t is None:
        return hdr.astype(dtype, copy=False)
    return (hdr.astype(np.float32) @ matrix_t).astype(dtype)


def write_exr(path: Path, rgb: np.ndarray, header: dict) -> None:
    """Write (H, W, 3) float16/float32 RGB atomically: a temporary file, then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        # a copy: OpenEXR fills in the header dict it is given
        OpenEXR.File(dict(header), {"RGB": np.ascontiguousarray(rgb)}).write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _CaptureThisThread(io.TextIOBase):
    """A stand-in for sys.stdout that keeps what one thread prints and passes the rest on."""

    def __init__(self, original):
        self.original, self.thread, self.captured = original, threading.get_ident(), []

    def write(self, text: str) -> int:
        if threading.get_ident() == self.thread:
            self.captured.append(text)
            return len(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()


_capture_lock = threading.Lock()


def _open_exr(path: Path):
    """OpenEXR.File, but a damaged file raises OutputError instead of printing a warning on
    stdout (which would corrupt `--json` output) and coming back empty."""
    with _capture_lock:
        capture = _CaptureThisThread(sys.stdout)
        sys.stdout = capture
        try:
            exr = OpenEXR.File(str(path))
        finally:
            sys.stdout = capture.original
    if capture.captured:
        exr.__exit__(None, None, None)
        reason = "".join(capture.captured).strip().removeprefix("Warning: ")
        raise OutputError(f"{path}: damaged EXR ({reason}); write it again")
    return exr


def read_exr(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read an RGB EXR: (pixels (H, W, 3) as stored, header dict)."""
    with _open_exr(Path(path)) as f:
        channels = f.channels()
        header = dict(f.header())  # the file's header is emptied when it closes
        if "RGB" in channels:
            pixels = channels["RGB"].pixels
        elif "RGBA" in channels:
            pixels = channels["RGBA"].pixels[..., :3]
        else:
            raise OutputError(f"{path}: no RGB channels (found {', '.join(channels)})")
        return np.array(pixels), header


def read_exr_header(path: str | Path) -> dict:
    """An EXR's header alone, without reading its pixels."""
    with OpenEXR.File(str(path), header_only=True) as f:
        return dict(f.header())


class ExrSequenceWriter:
    """Write ``frame_NNNNNN.exr`` files into ``out_dir`` from a bounded pool of threads.

    half: store float16 (default) or float32. attributes: extra header entries on every frame
    (Python int/float/str/Fraction; floats are stored as 32-bit). matrix: a 3×3 matrix M applied
    to every pixel before it is stored (``M @ rgb``: a change of primaries, done in the writer
    threads).
    """

    def __init__(self, out_dir: str | Path, compression: str = "piz", half: bool = True,
                 fps: fractions.Fraction | None = None, attributes: dict | None = None,
                 workers: int | None = None, matrix: np.ndarray | None = None):
        if compression not in COMPRESSIONS:
            raise OutputError(f"unknown EXR compression {compression!r}; choose one of "
                              f"{', '.join(COMPRESSIONS)}")
        self.out_dir = Path(out_dir)
        self.dtype = np.float16 if half else np.float32
        self.matrix = None if matrix is None else np.asarray(matrix, np.float32).T.copy()
        self.header = {"compression": COMPRESSIONS[compression], "type": OpenEXR.scanlineimage,
                       "chromaticities": REC709_CHROMATICITIES, **(attributes or {})}
        if fps:
            self.header["framesPerSecond"] = fractions.Fraction(fps)
        workers = workers or max(1, os.cpu_count() or 1)
        self.threads = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="exr")
        self._slots = threading.BoundedSemaphore(2 * workers)  # bounds frames held in memory
        self._lock = threading.Lock()
        self._pending: list[Future] = []
        self.written: list[int] = []
        self.write_seconds = 0.0  # summed over the pool's threads: compression and I/O
        self.wait_seconds = 0.0  # the caller blocked on a full pool (backpressure)

    def write(self, index: int, hdr: np.ndarray, attributes: dict | None = None) -> None:
        """Queue frame ``index`` (H, W, 3) linear RGB; blocks while the pool is full."""
        self._raise_failures()
        header = {**self.header, **(attributes or {})}
        # without a matrix, cast here: the queue then holds half the bytes
        pixels = stored_pixels(hdr, self.dtype) if self.matrix is None else hdr
        started = time.perf_counter()
        self._slots.acquire()
        self.wait_seconds += time.perf_counter() - started
        future = self._pool.submit(self._write, index, pixels, header)
        future.add_done_callback(lambda _: self._slots.release())
        self._pending.append(future)

    def _write(self, index: int, pixels: np.ndarray, header: dict) -> int:
        path = self.out_dir / frame_name(index)
        started = time.perf_counter()
        if self.matrix is not None:
            pixels = stored_pixels(pixels, self.dtype, self.matrix)
        try:
            write_exr(path, pixels, header)
        except (OSError, RuntimeError) as exc:  # OpenEXR raises RuntimeError on I/O failures
            reason = getattr(exc, "strerror", None) or exc
            raise OutputError(f"{path}: cannot write ({reason}); "
                              "check free space and permissions") from exc
        with self._lock:
            self.write_seconds += time.perf_counter() - started
        return index

    def _raise_failures(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for future in done:
            self.written.append(future.result())  # re-raises a failed write

    def close(self) -> None:
        """Wait for every queued frame; raises the first write error."""
        try:
            for future in self._pending:
                self.written.append(future.result())
            self._pending = []
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
