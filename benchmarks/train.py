"""GenCO training throughput (samples/s): the padded reference path vs the packed path in the same run (their
ratio), the training script on 2 CPU processes (DDP, gloo), and — where a GPU exists — device-resident data
in fp32 and bf16.

    python benchmarks/train.py                        # simulates a 100k-row release in a temp folder
    python benchmarks/train.py --release PATH --json  # an existing release
    python benchmarks/train.py --steps 80 --rows 200000

Every CPU figure is one optimizer step (forward, L = L_MIL + λ·L_RL, backward, SGD) on chronological slices
of a once-padded train tensor at the paper's batch of 1024, reported as wall-clock samples/s and as samples
per CPU-second of the process (``time.process_time``: the steadier figure on a shared machine; the load
average is printed). The id tables are what ``genco train`` uses: hashed, sized by the manifest (``--vocab exact``
for the old vocabularies), one fused table with a sparse gradient under SGD. The anchor is the padded path (φ on all 6×15 slots, (90×90) attention): ``packed ÷
padded`` is measured on the same rows in the same process. "2 processes" runs ``reference_model.train`` under
``torch.distributed.run`` (one thread each) and reads the samples/s its loop reports. Targets (issue #5):
≥ 50 k samples/s on 2 CPU cores, ≥ 2 M samples/s on one H200.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from genco_data import BuildConfig, build_release  # noqa: E402
from genco_data.release import Release  # noqa: E402
from genco_data.synth import SynthConfig, simulate  # noqa: E402
from genco_data.load import Vocabularies, pad_table  # noqa: E402
from reference_model.train_config import sparse_auto  # noqa: E402
from reference_model.train_data import padded_row_bytes  # noqa: E402
from reference_model.config import GenCOConfig  # noqa: E402
from reference_model.data import read_split  # noqa: E402
from reference_model.model import GenCO  # noqa: E402
from reference_model.policies import Objective  # noqa: E402

CPU_TARGET = 50_000
GPU_TARGET = 2_000_000


def make_release(rows: int, tmp: Path) -> Path:
    simulate(SynthConfig(train_rows=rows, test_rows=max(1000, rows // 20), seed=0), tmp / "raw", progress=False)
    build_release(BuildConfig(sources=[tmp / "raw"], out=tmp / "rel", version="1.0.0"), progress=False)
    return tmp / "rel"


def measure(data, vocabs, *, packed: bool, steps: int, batch: int, device: str = "cpu", bf16: bool = False, warmup: int = 3,
            optimizer: str = "sgd", sparse: bool | None = None, profile: int = 0) -> dict:
    """samples/s of ``steps`` optimizer steps (after ``warmup``) over consecutive slices of ``data``; the id table's
    gradient is sparse with SGD (the trainer's default) unless ``sparse`` says otherwise. ``profile``: print the
    torch.profiler table of that many further steps (top ops by self CPU time)."""
    sparse = sparse_auto(optimizer, vocabs.sizes()) if sparse is None else sparse
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GenCO(GenCOConfig(vocab_sizes=vocabs.sizes(), packed=packed, sparse_embeddings=sparse)).to(device)
    obj = Objective(model)
    opt = torch.optim.SGD(model.parameters(), lr=5e-3) if optimizer == "sgd" else torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    n = len(data)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else torch.autocast(device, enabled=False)

    def step(i: int) -> None:
        s = (i * batch) % max(1, n - batch)
        b = data[s : s + batch]
        opt.zero_grad(set_to_none=True)
        with ctx:
            loss, _ = obj(b, gen)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(warmup, warmup + steps):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            for i in range(profile):
                step(warmup + steps + i)
        print(f"profile of {profile} steps ({'packed' if packed else 'padded'}, batch {batch}, {device}):", file=sys.stderr)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    return {"samples_per_s": steps * batch / wall, "samples_per_cpu_s": steps * batch / max(cpu, 1e-9), "steps": steps, "batch": batch}


def run_ddp(release: Path, rows: int, procs: int, tmp: Path, device: str = "cpu", batch: int = 1024) -> dict | None:
    """``reference_model.train`` itself on ``procs`` processes (torchrun), one epoch over ``rows`` rows; the samples/s
    its loop reports (checkpoint writing excluded)."""
    out = tmp / f"run-{device}-{procs}-{rows}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", "-m", "reference_model.train",
           "--data", str(release), "--out", str(out), "--epochs", "1", "--max-rows", str(rows), "--save-every", "0", "--quiet",
           "--json", "--device", device, "--threads", "1", "--batch-size", str(batch), "--log-every", "1000000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
        return None
    s = json.loads(r.stdout)
    data = json.loads((out / "config.json").read_text()).get("data", {})
    return {"samples_per_s": s["samples_per_s"], "steps": s["steps"], "processes": procs, "rows": rows, "data_path": data.get("mode")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", default=None, help="release folder (default: simulate one)")
    p.add_argument("--rows", type=int, default=100_000, help="train rows used (default 100k)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per CPU figure (default 40)")
    p.add_argument("--padded-steps", type=int, default=15, help="timed steps of the (slow) padded path (default 15)")
    p.add_argument("--vocab", default="hashed", choices=("hashed", "exact"), help="id tables: hashed from the manifest (default, "
                   "what genco train uses) or exact")
    p.add_argument("--profile", type=int, default=0, help="print the torch.profiler table of N packed steps")
    p.add_argument("--gpu-batches", default="1024,8192,65536", help="GPU batch sizes (comma list)")
    p.add_argument("--gpu-script-rows", type=int, default=0,
                   help="GPU: also run the training script (device-resident) on this many rows, e.g. 10000000 "
                        "(a Table-1-shaped release of that size is written with benchmarks/loader.py's generator)")
    p.add_argument("--no-ddp", action="store_true", help="skip the 2-process run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    res: dict = {"load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        release = Path(args.release) if args.release else make_release(args.rows, tmp)
        rel = Release.open(release)
        table = read_split(rel, "train", args.rows)
        vocabs = Vocabularies.for_release(rel) if args.vocab == "hashed" else Vocabularies.build(table)
        data = pad_table(table, vocabs)
        res["rows"] = len(data)
        res["vocab"] = vocabs.describe()["mode"]
        res["table_rows"] = sum(vocabs.sizes().values())
        real = float(data.mask.float().mean())
        res["real_slot_share"] = real
        torch.set_num_threads(1)
        res["cpu_padded_1t"] = measure(data, vocabs, packed=False, steps=args.padded_steps, batch=1024)
        res["cpu_packed_1t"] = measure(data, vocabs, packed=True, steps=args.steps, batch=1024, profile=args.profile)
        other = not sparse_auto("sgd", vocabs.sizes())
        res["cpu_packed_1t_other_grad"] = measure(data, vocabs, packed=True, steps=args.steps, batch=1024, sparse=other)
        res["other_grad"] = "sparse" if other else "dense"
        res["cpu_packed_1t_adam"] = measure(data, vocabs, packed=True, steps=args.steps, batch=1024, optimizer="adam")
        torch.set_num_threads(2)
        res["cpu_packed_2t"] = measure(data, vocabs, packed=True, steps=args.steps, batch=1024)
        torch.set_num_threads(1)
        if not args.no_ddp:
            res["cpu_ddp_2p"] = run_ddp(release, args.rows, 2, tmp)
        if torch.cuda.is_available():
            res["gpu"] = torch.cuda.get_device_name(0)
            gdata = data.to("cuda")
            for bs in (int(x) for x in args.gpu_batches.split(",")):
                for bf16 in (False, True):
                    key = f"gpu_packed_b{bs}{'_bf16' if bf16 else ''}"
                    res[key] = measure(gdata, vocabs, packed=True, steps=max(10, args.steps // 2), batch=bs, device="cuda", bf16=bf16)
            if args.gpu_script_rows:
                sys.path.insert(0, str(ROOT / "benchmarks"))
                from loader import write_release

                big = write_release(tmp / "gpu-release", args.gpu_script_rows)
                res["gpu_script"] = run_ddp(big, args.gpu_script_rows, 1, tmp, device="cuda", batch=max(int(x) for x in args.gpu_batches.split(",")))
        else:
            res["gpu"] = None
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    pad, pk = res["cpu_padded_1t"], res["cpu_packed_1t"]
    print(f"GenCO training, batch 1024, {res['rows']:,} chronological rows ({100 * real:.0f} % of the 6x15 slots hold a candidate); "
          f"{res['vocab']} id tables ({res['table_rows']:,} rows); torch {res['torch']}, {res['cpu_count']} CPUs, "
          f"load average {res['load_average'][0]:.2f}; {padded_row_bytes()} padded bytes/row")
    print(f"{'run':<40}{'samples/s':>12}{'per CPU-s':>12}")
    rows = [("CPU padded reference, 1 thread (anchor)", pad), ("CPU packed, 1 thread", pk),
            (f"CPU packed, 1 thread, {res['other_grad']} table grad", res["cpu_packed_1t_other_grad"]),
            ("CPU packed, 1 thread, Adam", res["cpu_packed_1t_adam"]), ("CPU packed, 1 process x 2 threads", res["cpu_packed_2t"])]
    for name, r in rows:
        print(f"{name:<40}{r['samples_per_s']:>12,.0f}{r['samples_per_cpu_s']:>12,.0f}")
    ddp = res.get("cpu_ddp_2p")
    if ddp:
        print(f"{'CPU packed, DDP 2 processes (script)':<40}{ddp['samples_per_s']:>12,.0f}{'':>12}")
    print(f"packed / padded (same run): {pk['samples_per_s'] / pad['samples_per_s']:.2f}x wall, "
          f"{pk['samples_per_cpu_s'] / pad['samples_per_cpu_s']:.2f}x per CPU-second")
    best_cpu = max([pk["samples_per_s"], res["cpu_packed_2t"]["samples_per_s"]] + ([ddp["samples_per_s"]] if ddp else []))
    print(f"2 CPU cores: best {best_cpu:,.0f} samples/s vs target {CPU_TARGET:,} -> {'met' if best_cpu >= CPU_TARGET else 'NOT met'}")
    if res["gpu"] is None:
        print("GPU: not available — unmeasured")
    else:
        print(f"GPU: {res['gpu']} (device-resident data)")
        for k, r in res.items():
            if k.startswith("gpu_packed"):
                print(f"  {k:<32}{r['samples_per_s']:>14,.0f}")
        if res.get("gpu_script"):
            g = res["gpu_script"]
            print(f"  training script, {g['rows']:,} rows ({g['data_path']}){g['samples_per_s']:>14,.0f}")
        best = max(r["samples_per_s"] for k, r in res.items() if k.startswith("gpu_packed"))
        print(f"GPU best {best:,.0f} samples/s vs target {GPU_TARGET:,} -> {'met' if best >= GPU_TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
