"""The model registry: one explicit `ModelSpec` per model name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from hdrvid.errors import ModelError
from hdrvid.models.chen21 import Chen21, Chen21Coarse
from hdrvid.models.coarse import forward_flow_family
from hdrvid.models.common import forward_direct
from hdrvid.models.f2hdr import F2HDR, f2hdr_step
from hdrvid.models.fshdrv import Fshdrv
from hdrvid.models.hdrflow import HDRFlow, forward_hdrflow, hdrflow_step
from hdrvid.models.kalantari19 import Kalantari19
from hdrvid.models.lan_hdr import LanHdr, forward_lan_hdr
from hdrvid.models.merge import ExposureMerge, ReferenceFrame
from hdrvid.weights import CheckpointFormat, OfficialFile, WeightFile


@dataclass(frozen=True)
class ModelSpec:
    """What the engine needs to know about a model. ``windows`` maps exposures per cycle to the
    number of frames the model reads per output frame; ``trained`` models warn when the input's
    stops lie outside their training range.

    forward: runs the network on a window, ``forward(net, ldr (B, n, 3, H, W) gamma 2.2,
        times (B, n)) -> linear HDR (B, 3, H, W)``: the family's input adapter, beside its network in `models/`.
    weights: the files we ship per exposure count (empty: bring your own with --weights).
    checkpoint: the official checkpoint format, for --weights pointing at an official file.
    official: the authors' checkpoints `hdrvid weights pull` fetches, per exposure count.
    weights_hint: where official weights come from, for the error when none are given.
    train_step: for a model with loss terms of its own, its training step beside its network,
        ``train_step(net, batch, flow_weight) -> (hdr, extra loss)`` (`models.losses`); None:
        `forward`'s output and no extra term (`training.loop.default_step`).
    """

    name: str
    description: str
    build: Callable[[int], nn.Module]
    windows: dict[int, int]
    pad_multiple: int = 1
    forward: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = forward_direct
    weights: dict[int, tuple[WeightFile, ...]] = field(default_factory=dict)
    checkpoint: CheckpointFormat | None = None
    official: dict[int, OfficialFile] = field(default_factory=dict)
    weights_hint: str = ""
    bytes_per_pixel: float = 0  # peak memory of one window (measured, fp32); 0: not checked
    batch_size: int = 1  # windows per call unless --batch-size says otherwise
    # on the CPU, a call's windows run at once, each on its share of the cores (the network
    # keeps no state between windows); the default batch is then one window per core. It pays
    # end to end, where the decode thread and EXR writers take cores from the model
    parallel_windows: bool = False
    license: str = "MIT (hdrvid)"
    trained: bool = False
    # what to pick the model for, in a few plain words (`hdrvid models`, the README's table)
    use_for: str = ""
    train_step: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] | None = None

    @property
    def periods(self) -> tuple[int, ...]:
        return tuple(self.windows)

    def window(self, period: int) -> int:
        if period not in self.windows:
            supported = " or ".join(str(p) for p in self.windows)
            raise ModelError(f"model {self.name!r} supports {supported} exposures per cycle, not "
                             f"{period}; choose another --model (see `hdrvid models`)")
        return self.windows[period]

    def runs_as_shipped(self, period: int) -> bool:
        """Whether the model runs on ``period`` exposures without --weights."""
        return period in self.windows and (not self.trained or bool(self.weights.get(period)))

    def weights_source(self, period: int) -> str:
        """Where the weights for ``period`` exposures come from, for `hdrvid models`: ours, the
        authors' (pulled or not), or --weights."""
        if not self.trained:
            return "none needed"
        sources = []
        if files := self.weights.get(period):
            sources.append("hdrvid: bundled (weights/)"
                           + (", Hugging Face hub" if files[0].repo_id else ""))
        if entry := self.official.get(period):
            pulled = entry.cached(self.name, period).is_file()
            sources.append("official: " + ("pulled" if pulled else
                                           f"`hdrvid weights pull {self.name}`"))
        if not sources:
            sources.append("--weights (official checkpoint)" if self.checkpoint
                           else "--weights (train one)")
        return "; ".join(sources)


def pth_folder(*networks: str) -> CheckpointFormat:
    """The DeepHDRVideo code base's format: one ``<network>.pth`` per sub-network in a folder,
    each a dict whose ``state_dict`` entry is that network's."""
    return CheckpointFormat(key="state_dict", files={f"{n}.": f"{n}.pth" for n in networks})


# The authors' checkpoints, pinned: repository, commit, path in its tree, git blob id, terms
LAN_HDR_LICENSE = ("none stated (haesoochung/LAN-HDR has no LICENSE): each user downloads it "
                   "from the authors; hdrvid never redistributes it")
HDRFLOW_LICENSE = "MIT, (c) 2024 OpenImagingLab (github.com/OpenImagingLab/HDRFlow)"


def pinned(repo: str, commit: str, license: str, files: dict[int, tuple[str, str]]
           ) -> dict[int, OfficialFile]:
    """The authors' files of one repository at one commit: exposures -> (path, git blob id)."""
    return {period: OfficialFile(repo, commit, path, blob, license)
            for period, (path, blob) in files.items()}


LAN_HDR_OFFICIAL = pinned("haesoochung/LAN-HDR", "b63131ff7c15776e7ce95201c9851bb796f4ce67",
                          LAN_HDR_LICENSE, {
    2: ("exps/model_2E_test/checkpoints/ckpt.pt", "f4f274896258a88a61782285cf2efda215a9371c"),
    3: ("exps/model_3E_test/checkpoints/ckpt.pt", "b352127b9e1f56fa02716f4fba9546c383202b8b")})
HDRFLOW_OFFICIAL = pinned("OpenImagingLab/HDRFlow", "c891759c5eba11869a038679da444e78c54f5a22",
                          HDRFLOW_LICENSE, {
    2: ("pretrained_models/2E/checkpoint.pth", "d44e078ba5614dd96e8ef2456a0dfd49244399f4"),
    3: ("pretrained_models/3E/checkpoint.pth", "c2b22173b5e6ccd7333212dba459b055502f85f4")})


CHEN21_LICENSE = "CC BY-NC-SA 4.0 (official weights, guanyingc/DeepHDRVideo; non-commercial)"

MODELS: dict[str, ModelSpec] = {
    "f2hdr": ModelSpec(
        name="f2hdr",
        use_for="the default, for any footage: the most accurate here, learned fusion and "
                "denoising over merge's DIS flows (F²HDR), bundled weights",
        description="F²HDR (CVPR 2026) on DIS flow: flow adapter, fusion and refinement nets",
        # the adapter and the refinement narrower than the official 64 / 48 × 3 blocks: at the
        # official sizes they cost several seconds per CPU frame (docs/models/f2hdr.md)
        build=lambda period: F2HDR(period, adapter_width=24, refine_width=24, refine_blocks=1,
                                    merge_candidate=True, refine_replaced=True,
                                    denoiser=True, denoiser_context=True),
        windows={2: 3, 3: 5},
        pad_multiple=8,
        bytes_per_pixel=2400,  # measured, fp32, 3E (2E needs less; docs/performance.md)
        license="MIT (F²HDR, wei1895/F2HDR; weights trained by hdrvid)",
        # trained here (weights/README.md); fusion-stage files record refined=False
        weights={2: (WeightFile("f2hdr-2e.safetensors", sha256="e0f67a810b85db0af21812dafafbd1df"
                                "4be15012ea943440f17cadb82e3af510", size=1686134),),
                 3: (WeightFile("f2hdr-3e.safetensors", sha256="c5b099d2eecfe8adb7610a9dc2ac39e5"
                                "7618e823121a1451def3f95b6dc10058", size=4878170),)},
        trained=True,
        train_step=f2hdr_step,
    ),
    "merge": ModelSpec(
        name="merge",
        use_for="no weights and several times faster than f2hdr: long footage on a CPU, or "
                "a baseline; f2hdr (the default) is more accurate",
        description="DIS flow alignment + linear merge with deghosting",
        build=lambda period: ExposureMerge(),
        windows={2: 3, 3: 3},  # 5 frames for 3 exposures scored no better (docs/performance.md)
        # two windows' DIS flows keep both cores busy (docs/performance.md, Speed)
        batch_size=2,
    ),
    "reference": ModelSpec(
        name="reference",
        use_for="a floor to compare other models against (no merging)",
        description="the reference frame alone (the floor)",
        build=lambda period: ReferenceFrame(),
        windows={2: 1, 3: 1},
    ),
    "lan-hdr": ModelSpec(
        name="lan-hdr",
        use_for="comparing with the paper, with the authors' weights (weights pull); slow on "
                "a CPU",
        description="LAN-HDR (ICCV 2023): luminance-based attention alignment + gated fusion",
        build=lambda period: LanHdr(frames=2 * period + 1),
        windows={2: 5, 3: 7},
        forward=forward_lan_hdr,
        checkpoint=CheckpointFormat(key="g"),
        official=LAN_HDR_OFFICIAL,
        bytes_per_pixel=4800,  # measured, fp32, with the frame cache (docs/performance.md)
        license=LAN_HDR_LICENSE,
        trained=True,
    ),
    "hdrflow": ModelSpec(
        name="hdrflow",
        use_for="comparing; our CPU-trained weights score below merge and can leave colour "
                "blotches (the authors': weights pull, --weights official)",
        description="HDRFlow (CVPR 2024): flow network alignment + fusion network",
        build=lambda period: HDRFlow(exposures=period),
        windows={2: 3, 3: 5},
        pad_multiple=16,
        forward=forward_hdrflow,
        checkpoint=CheckpointFormat(key="state_dict", strip_prefix="module.",
                                    attributes={"official_warp": True}),
        official=HDRFLOW_OFFICIAL,
        license=HDRFLOW_LICENSE,
        # trained here (weights/README.md); no hub repository holds them yet
        weights={2: (WeightFile("hdrflow-2e.safetensors", sha256="9b2ea55c7499cf7bc1caffb854b2a41e"
                                "64e31c2ae16ef9131a14880eb614e296", size=6598066),),
                 3: (WeightFile("hdrflow-3e.safetensors", sha256="6b9174abd4b665f01199547f27596eba"
                                "8adf4d6df779838502fafb0d4339e4d7", size=10723002),)},
        bytes_per_pixel=1600,  # measured, fp32, 3E (2E needs less; docs/performance.md)
        # a window per core beats one window on all cores end to end (docs/performance.md)
        parallel_windows=True,
        trained=True,
        train_step=hdrflow_step,
    ),
    "chen21": ModelSpec(
        name="chen21",
        use_for="comparing, with the authors' checkpoint folder (non-commercial); slow",
        description="Chen21 (ICCV 2021): flow + weight net coarse stage, deformable refinement",
        build=lambda period: Chen21(period),
        windows={2: 5, 3: 7},
        forward=forward_flow_family,
        checkpoint=pth_folder("flow_net", "weight_net", "refine_net"),
        weights_hint="official: the folder Models/CoarseToFine_2Exp or CoarseToFine_3Exp "
                     "(flow_net.pth, weight_net.pth, refine_net.pth) from the BaiduYun link in "
                     "github.com/guanyingc/DeepHDRVideo's README; pass the folder",
        license=CHEN21_LICENSE,
        bytes_per_pixel=9000,  # measured, fp32 (docs/performance.md)
        trained=True,
    ),
    "chen21-coarse": ModelSpec(
        name="chen21-coarse",
        use_for="comparing, with the authors' checkpoint folder (non-commercial)",
        description="Chen21's coarse stage alone: the loadable Kalantari19-style model",
        build=lambda period: Chen21Coarse(period),
        windows={2: 3, 3: 5},
        forward=forward_flow_family,
        checkpoint=pth_folder("flow_net", "weight_net"),
        weights_hint="official: the Chen21 folder Models/CoarseToFine_2Exp or CoarseToFine_3Exp "
                     "(flow_net.pth and weight_net.pth are read) from the BaiduYun link in "
                     "github.com/guanyingc/DeepHDRVideo's README; pass the folder",
        license=CHEN21_LICENSE,
        bytes_per_pixel=2800,  # measured, fp32 (docs/performance.md)
        trained=True,
    ),
    "kalantari19": ModelSpec(
        name="kalantari19",
        use_for="training your own (no published weights)",
        description="Kalantari19 (EG 2019): flow alignment + EG19 merge net (no public weights)",
        build=lambda period: Kalantari19(period),
        windows={2: 3, 3: 5},
        forward=forward_flow_family,
        checkpoint=pth_folder("flow_net", "merge_net"),
        weights_hint="no official weights exist (Chen21's re-implementation was never "
                     "released): train one and pass hdrvid .safetensors, or a folder with "
                     "flow_net.pth and merge_net.pth saved by DeepHDRVideo's code",
        license="MIT (hdrvid; no published weights)",
        bytes_per_pixel=1700,  # measured, fp32 (docs/performance.md)
        # no parallel_windows: no clear gain end to end (docs/performance.md)
        trained=True,
    ),
    "fshdrv": ModelSpec(
        name="fshdrv",
        use_for="training your own (no published weights)",
        description="FSHDRV merging network, built from its authors' memo (no public weights)",
        build=lambda period: Fshdrv(),
        windows={2: 3},  # the memo covers 2 exposures only
        forward=forward_flow_family,
        weights_hint="no usable weights exist (the memo's 2e.zip checkpoint is truncated): "
                     "train one and pass hdrvid .safetensors",
        license="MIT (hdrvid; no published weights)",
        bytes_per_pixel=2200,  # measured, fp32 (docs/performance.md)
        parallel_windows=True,  # faster end to end (docs/performance.md)
        trained=True,
    ),
}


# what `convert` runs without -m: the most accurate model with bundled weights that runs at
# video rates on a CPU (README, "Which model")
DEFAULT_MODEL = "f2hdr"


def available_models() -> list[str]:
    """Names accepted by ``--model``."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def shipped_files() -> list[tuple[str, int, WeightFile]]:
    """(model, exposures, file) of every weight file the registry names."""
    return [(spec.name, period, f) for spec in MODELS.values()
            for period, files in spec.weights.items() for f in files]


def official_files() -> list[tuple[str, int, OfficialFile]]:
    """(model, exposures, entry) of every checkpoint of the authors' that `weights pull` gets."""
    return [(spec.name, period, entry) for spec in MODELS.values()
            for period, entry in spec.official.items()]


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements; buffers excluded, shared parameters counted once."""
    return sum(p.numel() for p in module.parameters())  # parameters() already deduplicates
