"""`hdrvid train`: train a registered model on windows synthesised from a data folder
(`data.data_folder`: ``--data``, else ``$HDRVID_DATA``).

AdamW on the μ-law L1 of the reference frame (docs/conventions.md §8), plus the model's own terms
where its docs give them (HDRFlow: the HDR-domain alignment loss, docs/models/hdrflow.md §6). bf16
autocast with channels_last on CPUs that have native bf16, bf16 autocast on CUDA. A run folder holds
``last.pt`` (model, optimiser, step: ``--resume`` continues from it), ``best.safetensors`` (fp16,
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
from hdrvid.models.common import luma
from hdrvid.models.hdrflow import replace_reference
from hdrvid.models.hdrflow_layers import warp
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
    stage: str = "all"  # models trained in stages (f2hdr): "fusion" first, then "all"


def hdrflow_step(net: nn.Module, batch: dict[str, torch.Tensor], flow_weight: float | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """HDRFlow's raw output and its extra losses (docs/models/hdrflow.md §6):

    * HALoss: each neighbour's ground truth warped with the predicted flow must match the
      reference's where the reference is clipped or dark;
    * flow supervision where the true flow is known (``batch["flow"]``, NaN elsewhere): the
      official recipe has it on Sintel; here the still-photograph windows, whose camera path is
      exact, give it. ``flow_weight`` replaces the official weight (0.001 2E, 0.0005 3E): with
      exact dense flow on 40 % of the windows, a larger one teaches sub-pixel flow in far fewer
      steps than the official recipe's GPU-days.
    """
    ldr, times, gt = batch["ldr"], batch["times"], batch["gt"]
    hdr, flows = net(ldr, times, return_flows=True)
    c = ldr.shape[1] // 2
    y = luma(ldr[:, c].float())
    mask = ((y > 0.8) | (y < 0.2)).expand(-1, 3, -1, -1)
    weight, official_flow_weight = (0.5, 0.001) if net.exposures == 2 else (0.2, 0.0005)
    flow_weight = official_flow_weight if flow_weight is None else flow_weight
    extra = hdr.new_zeros(())
    target = mu_law(gt[:, c])[mask] if mask.any() else None
    # 3E flows come as [p2, n1, p1, n2]: `flow_order` gives each one's window index
    for k, flow in zip(net.flow_order, flows):
        if target is not None:
            warped = mu_law(net.warp(gt[:, k], flow))
            extra = extra + weight * (warped[mask] - target).abs().mean()
        if "flow" in batch and (known := ~batch["flow"][:, k].isnan()).any():
            extra = extra + flow_weight * (flow - batch["flow"][:, k])[known].abs().mean()
    return hdr, extra


def f2hdr_step(net: nn.Module, batch: dict[str, torch.Tensor], flow_weight: float | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """F²HDR's output after the reference replacement (as at inference) and its extra losses (docs/models/f2hdr.md): 0.5 × the μ-law L1 of each
    neighbour's ground truth warped by the refined flow against the reference's, where the
    reference is badly exposed (luma > 0.8 or < 0.2); 0.001 × the flow L1 where the true flow
    is known. Both only when the adapter runs: in the fusion stage the flows are DIS's, fixed."""
    ldr, times, gt = batch["ldr"], batch["times"], batch["gt"]
    hdr, flows = net(ldr, times, return_flows=True)
    # the loss sees what inference outputs: the reference where it is well exposed
    hdr = replace_reference(hdr, ldr, times)
    extra = hdr.new_zeros(())
    if not net.refined:
        return hdr, extra
    c = ldr.shape[1] // 2
    y = luma(ldr[:, c].float())
    mask = ((y > 0.8) | (y < 0.2)).expand(-1, 3, -1, -1)
    flow_weight = 0.001 if flow_weight is None else flow_weight
    target = mu_law(gt[:, c])[mask] if mask.any() else None
    for k, flow in flows.items():
        if target is not None:
            extra = extra + 0.5 * (mu_law(warp(gt[:, k], flow))[mask] - target).abs().mean()
        if "flow" in batch and (known := ~batch["flow"][:, k].isnan()).any():
            extra = extra + flow_weight * (flow - batch["flow"][:, k])[known].abs().mean()
    return hdr, extra


STEPS: dict[str, Callable] = {"hdrflow": hdrflow_step, "f2hdr": f2hdr_step}


def initialise(net: nn.Module, init: str, spec: ModelSpec, period: int) -> None:
    """Load ``init`` into a fresh network: weights of this model, or for f2hdr an ``hdrflow``
    file, whose fusion network F²HDR's has the shapes of (docs/models/f2hdr.md)."""
    if Path(init).suffix == ".safetensors" and spec.name == "f2hdr":
        state, meta = read_safetensors(Path(init))
        if meta.get("model") == "hdrflow":
            if meta.get("period") != period:
                raise HdrvidError(f"--init {init}: hdrflow weights for {meta.get('period')} "
                                  f"exposures, not {period}")
            prefix = "fusion_net."
            net.fusion_net.load_state_dict(
                {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)})
            return
    load_weights(net, init, spec.checkpoint, f"{spec.name} {period}-exposure")


def default_step(net: nn.Module, batch: dict[str, torch.Tensor], spec: ModelSpec):
    """Models without extra terms: the output the registry's forward gives, no extra loss."""
    return spec.forward(net, batch["ldr"], batch["times"]), None


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


def train(run_dir: str | Path, options: TrainOptions = TrainOptions(),
          progress: Callable[[dict], None] | None = None) -> dict:
    """Train ``options.model`` into ``run_dir``; returns the last log record."""
    run_dir = Path(run_dir)
    spec, data = check(run_dir, options)
    period = options.exposures
    recipe = Recipe(period=period, window=spec.window(period), crop=options.crop)
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device, [])
    torch.manual_seed(options.seed)
    net = spec.build(period).to(device)
    if hasattr(net, "tone_perturb"):
        net.tone_perturb = True
    if device.type == "cpu" and dtype is not None:
        net.to(memory_format=torch.channels_last)
    parts = net.learned_parts(options.stage) if hasattr(net, "learned_parts") else [net]
    optimiser = torch.optim.AdamW([p for part in parts for p in part.parameters()], options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimiser, [options.steps // 2, options.steps * 3 // 4], gamma=0.5)
    step, best = 0, -math.inf
    checkpoint = run_dir / "last.pt"
    if options.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        step, best = state["step"], state["best"]
    elif options.init and not _holds_run(run_dir):
        initialise(net, options.init, spec, period)
    if hasattr(net, "learned_parts"):
        net.learned_parts(options.stage)  # weights loaded above may have recorded another stage
    run_dir.mkdir(parents=True, exist_ok=True)
    validation = Validation(recipe, options.val_windows, data, device)
    step_fn = functools.partial(STEPS[options.model], flow_weight=options.flow_weight) \
        if options.model in STEPS else functools.partial(default_step, spec=spec)
    loader = batches(WindowSynth(recipe, data=data, seed=options.seed), options, step)
    record: dict = {}
    tick, seen = time.perf_counter(), 0
    while step < options.steps:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(loader).items()}
        net.train()
        with torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
            hdr, extra = step_fn(net, batch)
        c = batch["ldr"].shape[1] // 2
        loss = F.l1_loss(mu_law(hdr.float()), mu_law(batch["gt"][:, c]))
        total = loss if extra is None else loss + extra.float()
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        schedule.step()
        step, seen = step + 1, seen + 1
        event = {"step": step, "steps": options.steps, "loss": loss.item()}
        if step % options.val_every == 0 or step == options.steps:
            record = _validate(net, validation, spec, device, dtype, step, loss, total, schedule,
                               (time.perf_counter() - tick) / seen)
            tick, seen = time.perf_counter(), 0
            if record["val_psnr_t"] > best:
                best = record["val_psnr_t"]
                export(net, run_dir / "best.safetensors", options, record)
            record["best_psnr_t"] = best
            _save(checkpoint, net, optimiser, schedule, step, best)
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            event.update(record)
        if progress:
            progress(event)
    return record


def _validate(net, validation: Validation, spec, device, dtype, step: int, loss, total,
              schedule, seconds_per_step: float) -> dict:
    net.eval()
    with torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
        score = validation.score(net, spec.forward)
    return {"step": step, "loss": loss.item(), "total": total.item(), "val_psnr_t": score,
            "merge_psnr_t": validation.merge_psnr, "lr": schedule.get_last_lr()[0],
            "s_per_step": seconds_per_step}


def export(net: nn.Module, path: Path, options: TrainOptions, record: dict) -> None:
    """fp16 safetensors with what they are for and how they were made."""
    half = get_spec(options.model).build(options.exposures)
    half.load_state_dict(net.state_dict())
    half.half()
    tmp = path.with_suffix(".tmp")
    meta = {"model": options.model, "period": options.exposures, "recipe": asdict(options),
            "validation": record}
    if hasattr(net, "refined"):  # fusion-stage weights skip the untrained adapter and refinement
        meta["attributes"] = {"refined": net.refined}
    save_safetensors(half, tmp, meta)
    tmp.replace(path)


def _save(path: Path, net, optimiser, schedule, step: int, best: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(), "step": step, "best": best}, tmp)
    tmp.replace(path)
