"""The authors' checkpoints: download one at its pinned commit, verify it, convert it.

LAN-HDR and HDRFlow publish their weights as ordinary git blobs, and the pinned commit's tree
records each blob id (`weights.OfficialFile`). `pull` streams the raw file into a temporary file
beside its destination, checks the git blob id, loads it with ``weights_only=True`` and strict
key and shape checks, and renames our safetensors conversion (with the official behaviour, such
as HDRFlow's warp, in its metadata) into the user's cache. The pickle itself is not kept, and a
failure or an interruption at any step leaves nothing behind. ``HF_HUB_OFFLINE=1`` forbids the
download, as it forbids the hub's.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hdrvid.errors import WeightsError
from hdrvid.weights import (
    OFFICIAL_URL_ENV,
    CheckpointFormat,
    OfficialFile,
    git_blob_id,
    import_official,
)

# a read that waits this long for the next bytes gives up: a stalled connection ends in an
# error instead of a hung pull
TIMEOUT_S = 60
CHUNK = 1 << 20

Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


def offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub read it (tests patch the constant)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def fetch_by_hand(entry: OfficialFile, model: str) -> str:
    """What to do without a download: the URL, the blob id to check, the import command."""
    return (f"download {entry.url()} (git blob {entry.blob}) by hand and run "
            f"`hdrvid weights import FILE -m {model}`")


def pull(entry: OfficialFile, model: str, period: int, build: Callable,
         fmt: CheckpointFormat, progress: Progress | None = None) -> tuple[Path, bool]:
    """The authors' ``model`` weights for ``period`` exposures as our safetensors in the cache:
    (path, whether it was downloaded now). An earlier pull is reused."""
    target = entry.cached(model, period)
    if target.is_file():
        return target, False
    if offline():
        raise WeightsError(f"{model} {period}-exposure: offline (HF_HUB_OFFLINE=1); "
                           + fetch_by_hand(entry, model))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.",
                                    suffix=".download")
    os.close(handle)
    download = Path(name)
    try:
        url = entry.url()
        fetch(url, download, progress)
        check_blob(download, entry, url)
        import_official(download, build, fmt, model, (period,), target,
                        provenance(entry, Path(entry.path).name))
    finally:  # the download is never kept: verified, it lives on as the conversion
        download.unlink(missing_ok=True)
    return target, True


def provenance(entry: OfficialFile, source: str) -> dict[str, str]:
    """Metadata of a conversion: where the authors publish the file, and its terms."""
    return {"source": source, "official": f"{entry.repo}@{entry.commit}:{entry.path}",
            "git_blob": entry.blob, "license": entry.license}


def fetch(url: str, dest: Path, progress: Progress | None = None) -> int:
    """Stream ``url`` into ``dest``; returns its size. Any failure is one WeightsError line."""
    request = urllib.request.Request(url, headers={"User-Agent": "hdrvid"})
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, \
                open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        mirror = f" (check ${OFFICIAL_URL_ENV})" if os.environ.get(OFFICIAL_URL_ENV) else ""
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}; the server has no such "
                           f"file{mirror} or failed: try again later") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise WeightsError(f"{url}: download failed ({reason}); check the network and run the "
                           "pull again") from exc
    # http.client ends a body cut short without an error: compare with the announced length
    if total is not None and done != total:
        raise WeightsError(f"{url}: the download stopped after {done} of {total} bytes; "
                           "nothing was kept: run the pull again")
    return done


def check_blob(path: Path, entry: OfficialFile, source: str) -> None:
    """Raise unless ``path`` is the authors' file: its git blob id is the one pinned."""
    actual = git_blob_id(path)
    if actual != entry.blob:
        raise WeightsError(f"{source}: git blob {actual} is not the authors' {entry.blob} "
                           f"({path.stat().st_size} bytes); the file is damaged or not theirs: "
                           "nothing was kept")


def identify(path: Path, entries: dict[int, OfficialFile]) -> tuple[str, int | None]:
    """A file's git blob id and the exposure count of the official entry it is (None: none)."""
    blob = git_blob_id(path)
    return blob, next((p for p, e in entries.items() if e.blob == blob), None)
