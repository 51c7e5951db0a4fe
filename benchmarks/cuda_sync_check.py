"""How often does watching make the CPU wait for the GPU? (needs a CUDA machine)

Trains the benchmark MLP (784-512-256-10, batch 128) on the GPU, plain and under
``modeldebug.watch`` (level ``--level``), and counts, with ``torch.profiler``, the CUDA runtime calls
that block the host or copy to it, per step, separately for unsampled and sampled steps:

- ``cudaDeviceSynchronize``, ``cudaStreamSynchronize``, ``cudaEventSynchronize`` (a wait),
  ``cudaFreeHost`` (freeing pinned memory waits for the device too) and a blocking ``cudaMemcpy``;
  ``.item()``/``.tolist()`` and ``torch.tensor(x, device="cuda")`` show as ``cudaMemcpyAsync`` +
  ``cudaStreamSynchronize`` (torch's ``memcpy_and_sync``), so they are counted whichever way they copy;
- ``cudaMemcpyAsync`` / ``cudaMemcpy`` (device-to-host copies: ``.item()``, ``.tolist()``, ``.cpu()``,
  and the deferred copy of an unsampled step);
- ``cudaEventQuery`` / ``cudaEventRecord`` / ``cudaHostAlloc``, shown, not judged.

The goal (issue 17): no synchronisation on an unsampled step beyond the plain loop's own, and at
most one (asynchronous) copy on a sampled step. The loop clips its gradients (``clip_grad_norm_``,
as most real loops do), so that what modeldebug measures around clipping is checked too. Runtime
call names are compared without CUPTI's ``_v2``/``_ptsz`` suffixes. The plain loop has none (nothing reads a value);
``loss.item()`` in a user's loop would add one of each, so the script never calls it.

What the design (src/modeldebug/capture/deferred.py, docs/overhead.md "CUDA") should show: an
unsampled step makes one ``cudaMemcpyAsync`` into pinned memory, one ``cudaEventRecord`` and a few
``cudaEventQuery`` calls, and no wait (unless the GPU runs more than 8 steps behind the host: then one
``cudaEventSynchronize`` a step); a sampled step reads what is still pending and its own values with
one copy and one wait. A ``cudaEventSynchronize`` on an
unsampled step means a copy was waited for although ``cudaEventQuery`` had said it landed (or the
queue was full). The script also checks that the record holds every step's loss and gradient
norm (the deferred rows were written, in order, by the end of the run).

    python benchmarks/cuda_sync_check.py                 # basic, 3 unsampled + 1 sampled window
    python benchmarks/cuda_sync_check.py --level detailed

It prints a table and exits 0 when the goal holds, 1 when it does not, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import modeldebug

SYNCS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaFreeHost", "cudaMemcpy")
COPIES = ("cudaMemcpyAsync", "cudaMemcpy")
SHOWN = ("cudaEventQuery", "cudaEventRecord", "cudaHostAlloc")


def make() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = [(torch.randn(128, 784, device="cuda"), torch.randint(0, 10, (128,), device="cuda")) for _ in range(4)]
    return model, opt, data


def step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def runtime_name(name: str) -> str:
    """A CUDA runtime call's name without the version or per-thread-stream suffix CUPTI may add."""
    return re.sub(r"(_v\d+|_ptsz|_ptds)+$", "", name)


def counted(fn, steps: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Blocking and copying CUDA runtime calls made while `fn` runs `steps` steps, per step."""
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()  # the profiler's own wait, subtracted below
    c: Counter[str] = Counter()
    for e in prof.events():
        name = runtime_name(e.name)
        if name in SYNCS or name in COPIES or name in SHOWN:
            c[name] += 1
    c["cudaDeviceSynchronize"] -= 1  # the torch.cuda.synchronize() above
    return Counter({k: v / steps for k, v in c.items() if v > 0})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--level", default="basic", choices=["basic", "detailed", "comprehensive"])
    p.add_argument("--window", type=int, default=10, help="unsampled steps per profiled window")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU")
        return 2
    model, opt, data = make()
    for i in range(30):  # warm-up: cuBLAS handles, the caching allocator
        step(model, opt, data[i % 4])
    rows: dict[str, Counter[str]] = {}
    rows["plain"] = counted(lambda: [step(model, opt, data[i % 4]) for i in range(args.window)], args.window)
    with modeldebug.watch(model, optimizer=opt, level=args.level, db=":memory:") as session:
        tr = session.tracer
        i = 0
        while tr.step < 25:  # past the early sampled steps (0, 1, 2, 5, 10, 20)
            step(model, opt, data[i % 4])
            i += 1
        # an unsampled window: steps that are all unsampled
        while any(tr.sampler.sampled(s) for s in range(tr.step, tr.step + args.window + 1)):
            step(model, opt, data[i % 4])
            i += 1
        rows["watched, unsampled"] = counted(
            lambda: [step(model, opt, data[k % 4]) for k in range(args.window)], args.window)
        while not tr.sampler.sampled(tr.step):
            step(model, opt, data[i % 4])
            i += 1
        # one sampled step, then the next one (what a sampled step measured after the update rides on its copy)
        rows["watched, sampled"] = counted(lambda: step(model, opt, data[0]), 1)
        rows["watched, after sampled"] = counted(lambda: step(model, opt, data[1]), 1)
        deferred = tr.assembler._cuda_copier is not None
        steps_run = tr.step
    names = list(dict.fromkeys([*SYNCS, *COPIES, *SHOWN]))  # (a blocking cudaMemcpy is in both)
    print(f"{'per step':<24}" + "".join(f"{n.removeprefix('cuda'):>20}" for n in names))
    for label, c in rows.items():
        print(f"{label:<24}" + "".join(f"{c.get(n, 0):>20.2f}" for n in names))
    plain = rows["plain"]
    unsampled = rows["watched, unsampled"]
    extra_syncs = sum(max(unsampled.get(n, 0) - plain.get(n, 0), 0) for n in SYNCS)  # none offsets another
    sampled_copies = sum(rows["watched, sampled"].get(n, 0) - plain.get(n, 0) for n in COPIES)
    cols, table = session.record.steps()
    loss, gnorm = cols.index("loss"), cols.index("grad_norm")
    complete = [r[0] for r in table] == list(range(steps_run)) and all(
        r[loss] is not None and r[gnorm] is not None for r in table)
    ok = extra_syncs <= 0 and sampled_copies <= 1 and complete and deferred
    print(f"\nunsampled steps: {extra_syncs:+.2f} synchronisations a step over plain (goal 0; deferred copies "
          f"{'used' if deferred else 'NOT used'}); sampled step: {sampled_copies:.0f} device-to-host copies "
          f"(goal at most 1); record: {len(table)} of {steps_run} step rows, "
          f"{'all with loss and gradient norm' if complete else 'SOME MISSING'}: {'ok' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
