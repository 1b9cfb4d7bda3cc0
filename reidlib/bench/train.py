"""``python -m reidlib bench train``: training speed targets.

* CPU smoke (always, unless ``--skip-smoke``): the baseline's ``smoke`` recipe trained and
  evaluated (Market-style protocol) on SynthPeds smoke, timed end to end; target <= 4
  minutes on a 2-core machine.
* GPU (when CUDA is available): ResNet-50 strong baseline at 256x128, batch 64, synthetic
  input; images/s of the engine's defaults (bf16/fp16 autocast + channels_last) against
  plain fp32 (contiguous tensors, no autocast) in the same process; target ratio >= 2.

``--json PATH`` writes the one results schema (:func:`reidlib.provenance.write_results`):
the command, the commit and the hardware in ``meta``, one row per measurement in ``results``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from pathlib import Path

import torch

CPU_TARGET_S = 240.0
GPU_TARGET_RATIO = 2.0


def _gpu_throughput(device: torch.device, fast: bool, batch: int, steps: int, warmup: int) -> float:
    from reidlib.precision import amp_dtype_for, autocast
    from reidlib.methods.baseline import BaselineMethod

    cfg = BaselineMethod.recipe("full").replace(pretrained=False)
    method = BaselineMethod(cfg, 751)
    torch.manual_seed(0)
    model = method.build_model().to(device).train()
    dtype = amp_dtype_for(device, enabled=fast)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=3.5e-4, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    x = torch.randn(batch, 3, 256, 128, device=device)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.arange(batch, device=device) // 4) % 751
    b = {"image": x, "label": y}

    def step():
        with autocast(device, enabled=fast, dtype=dtype):
            loss, _ = method.loss(model, b, 0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - t)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reidlib bench train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None, help="write the results (with hardware and command) to this file")
    p.add_argument("--skip-smoke", action="store_true", help="skip the CPU smoke train + evaluate timing")
    p.add_argument("--skip-gpu", action="store_true", help="skip the GPU throughput comparison")
    p.add_argument("--method", default="baseline", help="method for the smoke timing (default baseline)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv or [])

    from reidlib.provenance import hardware_summary, write_results

    rows: list[dict] = []
    if not args.skip_smoke:
        from reidlib.eval.evaluate import evaluate_run
        from reidlib.engine.trainer import train

        load0 = _load()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            t0 = time.perf_counter()
            res = train(args.method, "synthpeds:smoke", "smoke", out, device="cpu", progress=False)
            t1 = time.perf_counter()
            results, _ = evaluate_run(str(out), ["market"], device="cpu", json_path=str(Path(tmp) / "eval.json"))
            t2 = time.perf_counter()
        m = results[0].metrics
        total = t2 - t0
        rows.append({
            "name": f"cpu smoke: {args.method} train + evaluate (SynthPeds smoke)", "device": "cpu",
            "train_s": round(t1 - t0, 1), "evaluate_s": round(t2 - t1, 1), "total_s": round(total, 1),
            "images_per_s": res["last_epoch"].get("images_per_s"), "R-1": m.get("R-1"), "mAP": m.get("mAP"),
            "target": f"total <= {CPU_TARGET_S:.0f} s (2-core CPU)", "meets_target": total <= CPU_TARGET_S,
            "torch_threads": torch.get_num_threads(),
            # other processes on the machine slow the timing down: record the load around it
            "load_average_1min_before_after": [round(load0, 2), round(_load(), 2)],
        })
    if not args.skip_gpu:
        if torch.cuda.is_available():
            dev = torch.device("cuda")
            torch.backends.cudnn.benchmark = True
            fast = _gpu_throughput(dev, True, args.batch, args.steps, args.warmup)
            plain = _gpu_throughput(dev, False, args.batch, args.steps, args.warmup)
            from reidlib.precision import amp_dtype_for

            ratio = fast / plain
            rows.append({"name": "gpu: ResNet-50 baseline 256x128, plain fp32", "device": torch.cuda.get_device_name(dev),
                         "images_per_s": round(plain, 1), "tf32_conv": torch.backends.cudnn.allow_tf32})
            rows.append({"name": f"gpu: engine defaults ({str(amp_dtype_for(dev)).replace('torch.', '')} autocast + channels_last)",
                         "device": torch.cuda.get_device_name(dev), "images_per_s": round(fast, 1),
                         "speedup": round(ratio, 2), "target": f"speedup >= {GPU_TARGET_RATIO:.0f}x",
                         "meets_target": ratio >= GPU_TARGET_RATIO})
        else:
            rows.append({"name": "gpu: skipped (no CUDA device on this machine)", "device": "none"})

    gpu_used = not args.skip_gpu and torch.cuda.is_available()
    device = "cuda" if gpu_used else "cpu"
    print(f"bench train -- {hardware_summary(device)}")
    for r in rows:
        print(f"\n{r['name']}")
        for k, v in r.items():
            if k != "name":
                print(f"  {k:<14s} {v}")
    if args.json:
        write_results(args.json, rows, command="python -m reidlib bench train " + shlex.join(argv or []),
                      device=device, bench="train")
        print(f"\nwritten to {args.json}")
    return 0 if all(r.get("meets_target", True) for r in rows) else 1
