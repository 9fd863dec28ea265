"""HDRFlow speed: the multi-size large kernel (MLK) per memory layout, the engine, end to end.

1. MLK alone (three depthwise 7/9/11 convs + 1×1 merge at 1/16 resolution): NCHW against
   channels_last, and one fused 11×11 depthwise conv (768 outputs) against three separate ones.
2. Engine: ``HdrPredictor(...).predict_torch`` on random windows (random official-format
   weights, batch 1), fp32 and bf16 autocast, MLK in NCHW and in channels_last.
3. End to end: ``hdrvid convert`` (child process, ``--json``) on a clip rendered with
   `hdrvid.synth`.

    python benchmarks/hdrflow_kernels.py [--sizes 640x360,1280x720] [--threads 2] [--repeats 5]
                                         [--device cpu] [--convert-frames 12] [--skip mlk]
                                         [--precisions fp32,bf16] [--layouts "channels_last"]

Findings on the 2-core development machine (Xeon with avx512_bf16, torch 2.13 CPU, 2 threads;
the machine was shared with other jobs, so absolute times are inflated and noisy):
- MLK alone: the three depthwise convs are ~1-2 ms at 640×368 and ~12-30 ms at 1280×720; the
  1×1 merge dominates. channels_last and NCHW were within noise in fp32; in bf16 channels_last
  was 1.5-2× faster. A fused 11×11 grouped conv was 3-5× slower: not used.
- Whole model: channels_last for both networks was as fast as NCHW at 640×368 and faster at
  1280×720, more so in bf16 (2E 640×368, quietest runs: fp32 NCHW 462 ms, channels_last 347 ms;
  bf16 NCHW 305 ms, channels_last 230 ms). Switching layout for the MLK alone never helped
  consistently. Kept: channels_last everywhere (HDRFlow.channels_last). CUDA: not measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from itertools import product
from pathlib import Path

import torch
import torch.nn.functional as F

from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle
from hdrvid.models.hdrflow import HDRFlow
from hdrvid.models.hdrflow_layers import HDRFlowNet
from hdrvid.predictor import HdrPredictor
from hdrvid.process import tune_process

CYCLES = {2: (1.0, 8.0), 3: (1.0, 4.0, 16.0)}


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mlk_variants(net: HDRFlowNet) -> dict:
    """The MLK written four ways; each maps x (B, 256, h, w) to the same result."""
    def separate(x):
        y = torch.cat([net.conv7x7(x), net.conv9x9(x), net.conv11x11(x)], dim=1)
        return F.relu(x + net.merge_features(y))

    def depthwise(x):  # the three depthwise convs alone
        return net.conv7x7(x), net.conv9x9(x), net.conv11x11(x)

    def fused(x):  # one grouped conv: per channel, its 7, 9 and 11 kernels zero-padded to 11
        w = torch.stack([F.pad(net.conv7x7.weight, (2,) * 4), F.pad(net.conv9x9.weight, (1,) * 4),
                         net.conv11x11.weight], dim=1).flatten(0, 1)
        b = torch.stack([net.conv7x7.bias, net.conv9x9.bias, net.conv11x11.bias], 1).flatten()
        y = F.conv2d(x, w, b, padding=5, groups=256)
        merge = net.merge_features.weight.unflatten(1, (3, 256)).transpose(1, 2).flatten(1, 2)
        return F.relu(x + F.conv2d(y, merge, net.merge_features.bias))

    cl = torch.channels_last
    return {"separate NCHW": separate,
            "separate channels_last": lambda x: separate(x.contiguous(memory_format=cl)),
            "depthwise only NCHW": depthwise,
            "depthwise only channels_last": lambda x: depthwise(x.contiguous(memory_format=cl)),
            "fused NCHW": fused,
            "fused channels_last": lambda x: fused(x.contiguous(memory_format=cl))}


def bench_mlk(sizes, repeats: int, device: torch.device) -> None:
    """Variants interleaved round by round, best of the rounds (the machine may be shared)."""
    net = HDRFlowNet(9, 64, 2, 100.0).eval().to(device)
    variants = mlk_variants(net)
    for w, h in sizes:
        x = torch.rand(1, 256, -(-h // 16), w // 16, device=device)
        for dtype in (torch.float32, torch.bfloat16):
            best = dict.fromkeys(variants, float("inf"))
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                        enabled=dtype != torch.float32):
                expected = variants["separate NCHW"](x)
                for name, fn in variants.items():
                    if not name.startswith("depthwise"):
                        assert torch.allclose(fn(x).float(), expected.float(), atol=0.05), name
                for _ in range(repeats):
                    for name, fn in variants.items():
                        best[name] = min(best[name], timed(partial(fn, x), 3, device))
            for name, seconds in best.items():
                print(f"MLK {w}x{h} (1/16: {tuple(x.shape[-2:])}) {name:24s} "
                      f"{str(dtype)[6:]:8s} {seconds * 1e3:7.2f} ms")


LAYOUTS = {  # (networks in channels_last, MLK layout: None = as the networks)
    "NCHW": (False, None),
    "channels_last": (True, None),
    "channels_last, MLK NCHW": (True, torch.contiguous_format),
    "NCHW, MLK channels_last": (False, torch.channels_last),
}


def bench_engine(sizes, repeats: int, device: str, weights: dict[int, Path],
                 precisions: list[str], layouts: list[str]) -> None:
    """Layouts interleaved round by round, best of the rounds (the machine may be shared)."""
    for exposures, path in weights.items():
        for precision in precisions:
            predictor = HdrPredictor("hdrflow", period=exposures, device=device, weights=path,
                                     precision=precision)
            model, dev = predictor.model, predictor.device
            for w, h in sizes:
                n = 2 * exposures - 1
                ldr = torch.rand(1, n, 3, h, w, device=dev)
                times = torch.tensor([[CYCLES[exposures][(k - n // 2) % exposures]
                                       for k in range(n)]])
                best = dict.fromkeys(layouts, float("inf"))
                for _ in range(repeats):
                    for name in layouts:
                        channels_last, mlk = LAYOUTS[name]
                        model.channels_last, model.flow_net.mlk_format = channels_last, mlk
                        model.to(memory_format=torch.channels_last if channels_last
                                 else torch.contiguous_format)  # the weights as well
                        run = partial(predictor.predict_torch, ldr, times)
                        best[name] = min(best[name], timed(run, 1, dev))
                for name, seconds in best.items():
                    print(f"engine {exposures}E {w}x{h} {precision:5s} {name:24s} "
                          f"{seconds * 1e3:8.1f} ms  {1 / seconds:6.2f} fps", flush=True)


def bench_convert(sizes, frames: int, device: str, weights: dict[int, Path], folder: Path,
                  precisions: list[str]) -> None:
    for (exposures, path), precision in product(weights.items(), precisions):
        cycle = CYCLES[exposures]
        for w, h in sizes:
            clip = folder / f"clip_{exposures}e_{w}x{h}.mp4"
            scene = synth.procedural_scene(frames, w, h, seed=1)
            synth.write_alternating_clip(clip, scene, pattern_from_cycle(cycle), seed=1)
            command = [sys.executable, "-m", "hdrvid", "convert", str(clip), "-o",
                       str(folder / f"out_{exposures}_{w}"), "--json", "--overwrite",
                       "--model", "hdrflow", "--weights", str(path), "--device", device,
                       "--precision", precision,
                       "--exposures", ",".join(f"{t:g}" for t in cycle)]
            start = time.perf_counter()
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if child.returncode:
                raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr}")
            report = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"convert {exposures}E {w}x{h} {precision} {frames} frames: "
                  f"{frames / wall:.2f} fps wall (process incl. start-up), report: "
                  f"{json.dumps(report.get('stages', report))}")
            print("   ", " ".join(command))


def main() -> None:
    tune_process()  # as the hdrvid command does, so the speeds are a conversion's
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--exposures", default="2,3")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--layouts", default=";".join(LAYOUTS), help="';'-separated")
    parser.add_argument("--convert-frames", type=int, default=12)
    parser.add_argument("--skip", default="", help="comma list of mlk,engine,convert to skip")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    precisions = args.precisions.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if "mlk" not in skip:
        bench_mlk(sizes, args.repeats, torch.device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = {}
        for e in (int(v) for v in args.exposures.split(",")):
            state = {"module." + k: v for k, v in HDRFlow(e).state_dict().items()}
            weights[e] = folder / f"hdrflow_{e}e.pth"
            torch.save({"state_dict": state}, weights[e])
        if "engine" not in skip:
            bench_engine(sizes, args.repeats, args.device, weights, precisions,
                         args.layouts.split(";"))
        if "convert" not in skip:
            bench_convert(sizes, args.convert_frames, args.device, weights, folder, precisions)


if __name__ == "__main__":
    main()
