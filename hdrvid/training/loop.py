"""`hdrvid train`: train a registered model on windows synthesised from a data folder
(`data.data_folder`: ``--data``, else ``$HDRVID_DATA``).

AdamW on the μ-law L1 of the reference frame (docs/conventions.md §8), plus the model's own terms
from its training step (`ModelSpec.train_step`, beside its network; `default_step` for models
without any). Autocast in `predictor.resolve_precision`'s dtype, channels_last on CPUs that
autocast. A run folder holds ``last.pt`` (model, optimiser, step: ``--resume`` continues from it), ``best.safetensors`` (fp16,
the best validation PSNR-T so far) and ``log.jsonl``.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hdrvid.color import mu_law_torch as mu_law  # the loss's and PSNR-T's curve
from hdrvid.color import psnr_t_torch as psnr_t
from hdrvid.errors import HdrvidError
from hdrvid.predictor import resolve_device, resolve_precision
from hdrvid.registry import MODELS, ModelSpec, get_spec
from hdrvid.training.data import VALIDATION, Recipe, WindowSynth, collate, data_folder
from hdrvid.weights import load_weights, read_safetensors, save_safetensors


@dataclass(frozen=True)
class TrainOptions:
    """Options of `train`; field names equal the CLI's option names."""

    model: str = "hdrflow"
    exposures: int = 2
    steps: int = 20000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    weight_decay: float = 1e-4
    device: str = "auto"
    precision: str = "auto"
    val_every: int = 250
    val_windows: int = 24
    workers: int = 1
    seed: int = 0
    data: str | None = None
    resume: bool = False
    init: str | None = None  # weights to start from (a fresh run only): fine-tuning
    flow_weight: float | None = None  # weight of flow supervision; None: the model's docs
    tone_perturb: float = 0.7  # strength of the reference's tone perturbation (HDRFlow, f2hdr)
    stage: str = "all"  # models trained in stages (f2hdr): "fusion", "refine", then "all"
    well_exposed: str | None = None  # f2hdr: what replaces the well-exposed pixels; None: as loaded


def initialise(net: nn.Module, init: str, spec: ModelSpec, period: int) -> None:
    """Load ``init`` into a fresh network: weights of this model, or for f2hdr an ``hdrflow``
    file, whose fusion network F²HDR's has the shapes of (docs/models/f2hdr.md), or an f2hdr
    file from before its `merge` means widened the fusion network or it gained a denoiser."""
    if Path(init).suffix == ".safetensors" and spec.name == "f2hdr":
        state, meta = read_safetensors(Path(init))
        if meta.get("model") in ("hdrflow", "f2hdr") and meta.get("period") != period:
            raise HdrvidError(f"--init {init}: {meta.get('model')} weights for "
                              f"{meta.get('period')} exposures, not {period}")
        prefix = "fusion_net."
        fusion = {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)}
        if meta.get("model") == "hdrflow":
            net.load_fusion(fusion)
            return
        if meta.get("model") == "f2hdr":
            rest = {k: v.float() for k, v in state.items() if not k.startswith(prefix)}
            missing, unexpected = net.load_state_dict(rest, strict=False)
            # a file from before the `merge` means or the denoiser: those start fresh
            if unexpected or any(not k.startswith((prefix, "denoiser.")) for k in missing):
                raise HdrvidError(f"--init {init}: not f2hdr {period}-exposure weights "
                                  f"({len(unexpected)} unknown, {len(missing)} missing entries)")
            net.load_fusion(fusion)
            for name, value in meta.get("attributes", {}).items():
                setattr(net, name, value)
            return
    load_weights(net, init, spec.checkpoint, f"{spec.name} {period}-exposure")


def default_step(net: nn.Module, batch: dict[str, torch.Tensor], flow_weight: float | None = None,
                 *, spec: ModelSpec) -> tuple[torch.Tensor, None]:
    """The training step of models without loss terms of their own (``spec.train_step`` None):
    the output the registry's forward gives, no extra loss."""
    return spec.forward(net, batch["ldr"], batch["times"]), None


def step_function(spec: ModelSpec, options: TrainOptions) -> Callable:
    """The model's training step, ``step(net, batch) -> (hdr, extra loss or None)``."""
    if spec.train_step is None:
        return functools.partial(default_step, spec=spec)
    return functools.partial(spec.train_step, flow_weight=options.flow_weight)


class Validation:
    """A fixed set of windows from the validation sources; `merge`'s PSNR-T on them is the bar."""

    def __init__(self, recipe: Recipe, count: int, data: Path, device: torch.device):
        synth = WindowSynth(recipe, *VALIDATION, data=data, seed=12345)
        self.batches = [collate([synth[i]]) for i in range(count)]
        self.device = device
        merge = get_spec("merge")
        self.merge_psnr = self.score(merge.build(recipe.period), merge.forward, window=3)

    @torch.no_grad()
    def score(self, net: nn.Module, forward: Callable, window: int | None = None) -> float:
        values = []
        for batch in self.batches:
            ldr, times, gt = (batch[k].to(self.device) for k in ("ldr", "times", "gt"))
            c = ldr.shape[1] // 2
            if window is not None:  # a model with a shorter window reads the centre frames
                ldr, times = ldr[:, c - window // 2: c + window // 2 + 1], \
                    times[:, c - window // 2: c + window // 2 + 1]
            values.append(psnr_t(forward(net, ldr, times).float(), gt[:, c]).mean().item())
        return sum(values) / len(values)


def batches(synth: WindowSynth, options: TrainOptions, start: int) -> Iterator[dict]:
    """Endless batches, sample indices continuing from ``start`` so a resumed run sees new data."""
    sampler = range(start * options.batch_size, 1 << 62)
    loader = torch.utils.data.DataLoader(synth, batch_size=options.batch_size, sampler=sampler,
                                         collate_fn=collate, num_workers=options.workers,
                                         persistent_workers=options.workers > 0)
    return iter(loader)


def check(run_dir: str | Path, options: TrainOptions) -> tuple[ModelSpec, Path]:
    """The checks that need no network, before anything is built or written: a model with
    weights to train for this exposure count, the data folder, and a run folder that is new
    unless resuming. Returns the model's spec and the data folder."""
    spec = get_spec(options.model)
    if not spec.trained:
        raise HdrvidError(f"--model {options.model} has no weights to train; choose one of "
                          f"{', '.join(n for n, s in MODELS.items() if s.trained)}")
    spec.window(options.exposures)
    data = data_folder(options.data)
    if _holds_run(Path(run_dir)) and not options.resume:
        raise HdrvidError(f"{run_dir}: holds an earlier run; pass --resume to continue it or "
                          "choose another folder")
    return spec, data


def _holds_run(run_dir: Path) -> bool:
    return run_dir.exists() and any(run_dir.iterdir())


@dataclass
class _Session:
    """A run being trained: what ``last.pt`` keeps (network, optimiser, schedule, step, best
    validation PSNR-T) and how its steps run (the model's spec, device, autocast dtype)."""

    spec: ModelSpec
    net: nn.Module
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    dtype: torch.dtype | None
    step: int = 0
    best: float = -math.inf

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, self.dtype or torch.float32,
                              enabled=self.dtype is not None)


def train(run_dir: str | Path, options: TrainOptions = TrainOptions(),
          progress: Callable[[dict], None] | None = None) -> dict:
    """Train ``options.model`` into ``run_dir``; returns the last log record. ``progress`` gets
    an event per step: step, steps and loss, plus the log record's fields after a validation."""
    run_dir = Path(run_dir)
    spec, data = check(run_dir, options)
    recipe = Recipe(period=options.exposures, window=spec.window(options.exposures),
                    crop=options.crop)
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device, [])
    torch.manual_seed(options.seed)
    session = _build(spec, options, device, dtype)
    _start(session, run_dir, options)
    run_dir.mkdir(parents=True, exist_ok=True)
    validation = Validation(recipe, options.val_windows, data, device)
    loader = batches(WindowSynth(recipe, data=data, seed=options.seed), options, session.step)
    return _loop(session, run_dir, options, loader, validation, progress)


def _build(spec: ModelSpec, options: TrainOptions, device: torch.device,
           dtype: torch.dtype | None) -> _Session:
    """A fresh network in training form, AdamW over the parts ``--stage`` trains, and the
    schedule halving the rate at 1/2 and 3/4 of the steps."""
    net = spec.build(options.exposures).to(device)
    if hasattr(net, "tone_perturb"):
        net.tone_perturb = options.tone_perturb
    if device.type == "cpu" and dtype is not None:
        net.to(memory_format=torch.channels_last)
    parts = net.learned_parts(options.stage) if hasattr(net, "learned_parts") else [net]
    optimiser = torch.optim.AdamW([p for part in parts for p in part.parameters()], options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimiser, [options.steps // 2, options.steps * 3 // 4], gamma=0.5)
    return _Session(spec, net, optimiser, schedule, device, dtype)


def _start(session: _Session, run_dir: Path, options: TrainOptions) -> None:
    """Continue ``last.pt`` with --resume, or start a new run from --init's weights."""
    checkpoint = run_dir / "last.pt"
    if options.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        session.net.load_state_dict(state["model"])
        session.optimiser.load_state_dict(state["optimiser"])
        session.schedule.load_state_dict(state["schedule"])
        session.step, session.best = state["step"], state["best"]
    elif options.init and not _holds_run(run_dir):
        initialise(session.net, options.init, session.spec, options.exposures)
    if hasattr(session.net, "learned_parts"):
        # weights loaded above may have recorded another stage
        session.net.learned_parts(options.stage)
    if options.well_exposed is not None:  # after --init: it overrides what the file recorded
        if not hasattr(session.net, "well_exposed_from"):
            raise HdrvidError(f"--well-exposed is for f2hdr, not {options.model}")
        session.net.well_exposed_from = options.well_exposed


def _loop(session: _Session, run_dir: Path, options: TrainOptions, loader: Iterator[dict],
          validation: Validation, progress: Callable[[dict], None] | None) -> dict:
    """Optimiser steps up to ``options.steps``, validating every ``val_every``."""
    step_fn = step_function(session.spec, options)
    record: dict = {}
    tick, seen = time.perf_counter(), 0
    while session.step < options.steps:
        batch = {k: v.to(session.device, non_blocking=True) for k, v in next(loader).items()}
        loss, total = _optimise(session, batch, step_fn)
        seen += 1
        event = {"step": session.step, "steps": options.steps, "loss": loss.item()}
        if session.step % options.val_every == 0 or session.step == options.steps:
            record = _validate(session, validation, loss, total,
                               (time.perf_counter() - tick) / seen)
            tick, seen = time.perf_counter(), 0
            _keep(session, run_dir, options, record)
            event.update(record)
        if progress:
            progress(event)
    return record


def _optimise(session: _Session, batch: dict[str, torch.Tensor], step_fn: Callable
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on the μ-law L1 of the reference frame plus the model's own terms; returns
    (the L1, the total)."""
    session.net.train()
    with session.autocast():
        hdr, extra = step_fn(session.net, batch)
    c = batch["ldr"].shape[1] // 2
    loss = F.l1_loss(mu_law(hdr.float()), mu_law(batch["gt"][:, c]))
    total = loss if extra is None else loss + extra.float()
    session.optimiser.zero_grad(set_to_none=True)
    total.backward()
    session.optimiser.step()
    session.schedule.step()
    session.step += 1
    return loss, total


def _validate(session: _Session, validation: Validation, loss: torch.Tensor,
              total: torch.Tensor, seconds_per_step: float) -> dict:
    session.net.eval()
    with session.autocast():
        score = validation.score(session.net, session.spec.forward)
    return {"step": session.step, "loss": loss.item(), "total": total.item(),
            "val_psnr_t": score, "merge_psnr_t": validation.merge_psnr,
            "lr": session.schedule.get_last_lr()[0], "s_per_step": seconds_per_step}


def _keep(session: _Session, run_dir: Path, options: TrainOptions, record: dict) -> None:
    """After a validation: the best weights so far, ``last.pt`` and a line of ``log.jsonl``."""
    if record["val_psnr_t"] > session.best:
        session.best = record["val_psnr_t"]
        export(session.net, run_dir / "best.safetensors", options, record)
    record["best_psnr_t"] = session.best
    _save(run_dir / "last.pt", session)
    with open(run_dir / "log.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


TRAINED_ATTRIBUTES = ("refined", "adapted", "exposure_prior", "reference_replacement",
                      "well_exposed_from", "refine_replaced", "denoised")


def export(net: nn.Module, path: Path, options: TrainOptions, record: dict) -> None:
    """fp16 safetensors with what they are for and how they were made."""
    half = get_spec(options.model).build(options.exposures)
    half.load_state_dict(net.state_dict())
    half.half()
    tmp = path.with_suffix(".tmp")
    meta = {"model": options.model, "period": options.exposures, "recipe": asdict(options),
            "validation": record}
    # behaviour the weights were trained with: fusion-stage weights skip the untrained adapter
    # and refinement, and the fusion net learned its weights on top of the exposure prior or not
    attributes = {name: getattr(net, name) for name in TRAINED_ATTRIBUTES if hasattr(net, name)}
    if attributes:
        meta["attributes"] = attributes
    save_safetensors(half, tmp, meta)
    tmp.replace(path)


def _save(path: Path, session: _Session) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": session.net.state_dict(), "optimiser": session.optimiser.state_dict(),
                "schedule": session.schedule.state_dict(), "step": session.step,
                "best": session.best}, tmp)
    tmp.replace(path)
