"""Weights: find them, verify them, read official checkpoints and our safetensors, load strictly.

Checkpoints are untrusted input: pickles are read with ``torch.load(weights_only=True)`` (plain
tensors and containers only), files we ship are checked against their sha256, and our own
weights are safetensors (no code at all). Every state dict is checked against the model's own
keys and shapes before it is loaded, so a wrong file gives one line that says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hdrvid.errors import WeightsError

METADATA_KEY = "hdrvid"


def _bundled_dir() -> Path:
    """weights/ at the top of a source checkout (an editable install reads it there); a wheel
    carries the same files as the package data hdrvid/_weights (pyproject.toml maps them)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "weights"
    return checkout if checkout.is_dir() else package / "_weights"


# $HDRVID_WEIGHTS overrides where the files we ship are looked for
WEIGHTS_DIR = Path(os.environ.get("HDRVID_WEIGHTS", _bundled_dir()))


@dataclass(frozen=True)
class WeightFile:
    """A weight file we ship: name, sha256, size, and the Hugging Face repo and revision it can
    be fetched from."""

    filename: str
    sha256: str
    size: int = 0
    repo_id: str | None = None
    revision: str = "main"


@dataclass(frozen=True)
class CheckpointFormat:
    """Where an official checkpoint keeps its state dict.

    key: the entry holding the state dict (``"g"``, ``"state_dict"``); None for a bare dict.
    strip_prefix: removed from every key (``"module."`` of DataParallel saves).
    files: for checkpoints split over several files in one folder: key prefix -> file name.
    attributes: set on the module after loading official weights (behaviour the official code
        has and our own training does not, e.g. its warp); our safetensors record their own.
    """

    key: str | None = None
    strip_prefix: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class OfficialFile:
    """A checkpoint its authors publish as an ordinary git blob in their repository: the pinned
    commit's tree records its git blob id, so a download is verified against the authors' own
    record without hdrvid holding (or redistributing) the bytes.

    repo: ``owner/name`` on GitHub; commit: the pinned commit; path: the file in its tree;
    blob: its git blob id (SHA-1 of ``b"blob <size>\\0" + data``); license: the terms the
    authors give the file.
    """

    repo: str
    commit: str
    path: str
    blob: str
    license: str

    def url(self) -> str:
        """The raw file at the pinned commit; $HDRVID_OFFICIAL_URL replaces the host (a mirror,
        or the tests' local server)."""
        base = os.environ.get(OFFICIAL_URL_ENV, OFFICIAL_URL).rstrip("/")
        return f"{base}/{self.repo}/{self.commit}/{self.path}"

    def cached(self, model: str, period: int) -> Path:
        """Where the converted file lives in the user's cache. The blob id is in the name, so a
        new pin never mistakes an older conversion for its own."""
        return official_cache() / f"{model}-{period}e-{self.blob[:12]}.safetensors"


OFFICIAL_URL = "https://raw.githubusercontent.com"
OFFICIAL_URL_ENV = "HDRVID_OFFICIAL_URL"
OFFICIAL = "official"  # --weights official: the authors' weights, pulled


def official_cache() -> Path:
    """The folder of converted official checkpoints: huggingface_hub's assets cache (HF_HOME,
    HF_ASSETS_CACHE), laid out as its ``cached_assets_path("hdrvid", "official", "converted")``; read at call
    time so that the environment and tests can move it. Not created here: listing weights
    writes nothing."""
    from huggingface_hub import constants

    return Path(constants.HF_ASSETS_CACHE).expanduser() / "hdrvid" / "official" / "converted"


def git_blob_id(path: Path) -> str:
    """The id git gives the file's bytes: SHA-1 of ``b"blob <size>\\0"`` followed by the bytes."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise unless ``path`` has the sha256 we shipped it with."""
    actual = sha256sum(path)
    if actual != expected:
        raise WeightsError(f"{path}: sha256 {actual[:12]}… is not the shipped {expected[:12]}…; "
                           "the file is damaged or replaced: delete it and fetch it again")


def torch_load(path: Path) -> object:
    """A pickled checkpoint, refusing anything but tensors and plain containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"{path}: holds Python objects besides tensors, refused for safety "
                           f"({str(exc).splitlines()[0][:120]}); convert it to a plain state "
                           "dict or safetensors") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0][:120]}); check the download") from exc


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """A safetensors state dict (tensors stored once under several names restored to each) and
    our metadata (`save_safetensors`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
        ours = json.loads(metadata.pop(METADATA_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc}); check the "
                           "download") from exc
    # save_model keeps one copy of shared tensors and records the other names as name -> kept
    state.update({name: state[kept] for name, kept in metadata.items()
                  if kept in state and name not in state})
    return state, ours


def save_safetensors(module: nn.Module, path: Path, metadata: Mapping[str, object]) -> None:
    """Our weight format: the state dict (shared tensors once) plus JSON metadata (model,
    period, attributes, provenance) under one key."""
    from safetensors.torch import save_model

    save_model(module, str(path), metadata={METADATA_KEY: json.dumps(dict(metadata))})


def read_official(path: Path, fmt: CheckpointFormat) -> dict[str, torch.Tensor]:
    """The state dict of an official checkpoint (a file, or a folder of ``fmt.files``)."""
    if fmt.files:
        if not path.is_dir():
            raise WeightsError(f"{path}: expected a folder holding {', '.join(fmt.files.values())}")
        state = {}
        for prefix, name in fmt.files.items():
            if not (path / name).is_file():
                raise WeightsError(f"{path}: {name} is missing; the folder must hold "
                                   f"{', '.join(fmt.files.values())}")
            part = read_official(path / name, CheckpointFormat(fmt.key, fmt.strip_prefix))
            state.update({prefix + k: v for k, v in part.items()})
        return state
    checkpoint = torch_load(path)
    if fmt.key is not None:
        if not isinstance(checkpoint, dict) or fmt.key not in checkpoint:
            found = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint)
            raise WeightsError(f"{path}: no {fmt.key!r} entry (found {found}); is this the "
                               "official checkpoint of this model?")
        checkpoint = checkpoint[fmt.key]
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return {k.removeprefix(fmt.strip_prefix): v for k, v in checkpoint.items()}


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: Path,
                     what: str) -> None:
    """Raise WeightsError unless ``state`` has exactly the module's keys and shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (needs {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing entries (first {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected entries (first {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape (first {wrong[0]})")
    if problems:
        raise WeightsError(f"{source}: not {what} weights: {'; '.join(problems)}; pass the "
                           "checkpoint made for this model and exposure count")


def load_weights(module: nn.Module, path: Path, fmt: CheckpointFormat | None, what: str,
                 sha256: str | None = None) -> nn.Module:
    """Load ``path`` into ``module`` strictly: our safetensors, or the official format ``fmt``.

    ``what`` names the model for messages (``"lan-hdr 2-exposure"``). A safetensors file's
    metadata may carry ``attributes`` (set on the module) and its ``model``/``period``, which
    must match ``what``.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder; pass --weights with the path of the "
                           f"{what} weights")
    if sha256 is not None:
        verify(path, sha256)
    attributes: Mapping[str, object] = {}
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path)
        made_for = f"{meta.get('model')} {meta.get('period')}-exposure"
        if "model" in meta and made_for != what:
            raise WeightsError(f"{path}: weights for {made_for}, not {what}; pass --model "
                               f"{meta['model']} or the {what} weights")
        attributes = meta.get("attributes", {})
    elif fmt is None:
        raise WeightsError(f"{path}: {what} has no official checkpoint format; pass hdrvid "
                           ".safetensors weights")
    else:
        state = read_official(path, fmt)
        attributes = fmt.attributes
    check_state_dict(module, state, path, what)
    module.load_state_dict(state, strict=True)
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def import_official(checkpoint: Path, build, fmt: CheckpointFormat | None, model: str,
                    periods: tuple[int, ...], output: Path,
                    provenance: Mapping[str, object] | None = None) -> int:
    """Convert an official checkpoint to our safetensors; returns the exposure count it fits
    (the first of ``periods`` whose network it loads into strictly). ``provenance`` (where the
    file came from, its licence) is added to the metadata."""
    if fmt is None:
        raise WeightsError(f"{model} has no official checkpoint format to import")
    errors = []
    for period in periods:
        try:
            net = load_weights(build(period), Path(checkpoint), fmt, f"{model} {period}-exposure")
        except WeightsError as exc:
            errors.append(str(exc))
            continue
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        try:
            save_safetensors(net, tmp, {"model": model, "period": period,
                                        "attributes": dict(fmt.attributes),
                                        "source": Path(checkpoint).name, **(provenance or {})})
            tmp.replace(output)
        finally:  # a failed or interrupted write leaves no half file behind
            tmp.unlink(missing_ok=True)
        return period
    raise WeightsError(errors[-1] if len(errors) == 1 else
                       f"{checkpoint}: fits no {model} variant ({'; '.join(errors)})")


def locate(shipped: WeightFile) -> tuple[str, Path | None]:
    """Where a shipped file is: ("bundled", path) in weights/, ("cached", path) in the Hugging
    Face cache, or ("remote", None)."""
    local = WEIGHTS_DIR / shipped.filename
    if local.is_file():
        return "bundled", local
    if shipped.repo_id:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(shipped.repo_id, shipped.filename,
                                        revision=shipped.revision)
        if isinstance(cached, str):
            return "cached", Path(cached)
    return "remote", None


def resolve(weights: str | Path | None, files: tuple[WeightFile, ...], what: str) -> Path | None:
    """The weights to load: ``--weights`` if given, else the shipped file (verified) from
    weights/ or the Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1). None if the model
    needs no weights."""
    if weights is not None:
        return Path(weights)
    return fetch(files[0]) if files else None


def fetch(shipped: WeightFile) -> Path:
    """The shipped file, verified against its sha256: from weights/ when it is bundled, else
    from the Hugging Face cache, downloading it at its pinned revision unless HF_HUB_OFFLINE=1."""
    local = WEIGHTS_DIR / shipped.filename
    if local.is_file():
        verify(local, shipped.sha256)
        return local
    if shipped.repo_id is None:
        raise WeightsError(f"{shipped.filename} is not in {WEIGHTS_DIR} and has no download "
                           "location; pass --weights PATH")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    url = (f"https://huggingface.co/{shipped.repo_id}/resolve/{shipped.revision}/"
           f"{shipped.filename}")
    try:
        path = Path(hf_hub_download(shipped.repo_id, shipped.filename,
                                    revision=shipped.revision))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise WeightsError(f"{shipped.filename} could not be fetched ({exc.__class__.__name__}: "
                           "no network, or HF_HUB_OFFLINE=1); download it by hand from "
                           f"{url} into {WEIGHTS_DIR}, or pass --weights PATH") from exc
    verify(path, shipped.sha256)
    return path
