"""`modeldebug onnx compare` side by side with Polygraphy on the same exports: which node each names, how long.

Exports (random weights, both exporters where they work): a ResNet-like CNN with BatchNorm, an
`nn.TransformerEncoder` with a padding mask, and an HF BERT. Each clean, and with one weight of a
later layer raised by 0.5 after export. Three procedures, all through their command lines:

- modeldebug vs PyTorch: `modeldebug onnx compare M.onnx --torch nets:build --inputs nets:data`
- modeldebug vs the clean export: `modeldebug onnx compare M.onnx CLEAN.onnx --inputs nets:data`
- Polygraphy vs the clean export: `polygraphy run CLEAN.onnx --onnxrt --onnx-outputs mark all
  --data-loader-script nets:data --save-outputs ref.json`, then the same on M.onnx with
  `--load-outputs ref.json`; the node named is the producer of the first mismatching output in graph
  order (Polygraphy lists every mismatching output, introducers and inheritors alike).

Polygraphy cannot run PyTorch, so it has no answer for "does the export match the model"; on the
clean rows both ONNX procedures compare the export with itself, which must pass.

    python benchmarks/onnx_vs_polygraphy.py [--out DIR]      # prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETS = r'''
import math, torch
from torch import nn

class Block(nn.Module):
    def __init__(s, i, o):
        super().__init__(); s.conv = nn.Conv2d(i, o, 3, padding=1); s.bn = nn.BatchNorm2d(o); s.act = nn.ReLU()
    def forward(s, x): return s.act(s.bn(s.conv(x)))

class ResNetLike(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = Block(3, 8); s.b1 = Block(8, 8); s.b2 = Block(8, 8); s.head = nn.Linear(8, 10)
    def forward(s, x):
        x = s.stem(x)
        x = x + s.b2(s.b1(x))  # a residual
        return s.head(x.mean((2, 3)))

class Encoder(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(50, 32)
        s.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True), 2,
                                      enable_nested_tensor=False)
        s.head = nn.Linear(32, 2)
    def forward(s, ids, mask):
        return s.head(s.enc(s.emb(ids), src_key_padding_mask=mask == 0)[:, 0])

class Bert(nn.Module):
    def __init__(s):
        super().__init__()
        from transformers import BertConfig, BertModel
        s.bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, max_position_embeddings=32))
    def forward(s, ids, mask):
        return s.bert(input_ids=ids, attention_mask=mask).last_hidden_state

def cnn():
    torch.manual_seed(0); m = ResNetLike()
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d):
            b.running_mean.uniform_(-1, 1); b.running_var.uniform_(0.5, 2)
            b.weight.data.uniform_(0.5, 1.5); b.bias.data.uniform_(-0.2, 0.5)
    return m.eval()

def encoder():
    torch.manual_seed(0); return Encoder().eval()

def bert():
    torch.manual_seed(0); return Bert().eval()

def cnn_data():
    yield {"x": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)).numpy()}

def seq_data():
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 8, dtype=torch.long); mask[1, 6:] = 0
    yield {"ids": ids.numpy(), "mask": mask.numpy()}
'''


def export(nets: object, name: str, dynamo: bool, path: Path) -> bool:
    import warnings

    import torch

    model = getattr(nets, name)()
    feeds = next(iter(nets.cnn_data() if name == "cnn" else nets.seq_data()))
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(path), dynamo=dynamo, input_names=list(feeds), verbose=False)
    except Exception as exc:  # an exporter that cannot take the model: a row saying so
        print(f"  {name} {'dynamo' if dynamo else 'torchscript'}: export failed: {type(exc).__name__}", file=sys.stderr)
        return False
    return True


def perturb(path: Path, out: Path) -> str:
    """Raise one weight of the second-to-last Conv/MatMul/Gemm that reads an initializer; its node's name."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")
             and len(n.input) > 1 and n.input[1] in inits and len(inits[n.input[1]].dims) >= 2]
    node = nodes[-2]
    t = inits[node.input[1]]
    arr = numpy_helper.to_array(t).copy()
    arr.reshape(-1)[0] += 0.5
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    onnx.save(m, str(out))
    return node.name


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start, proc


def ours(model: Path, reference: list[str], data: str, cwd: Path) -> tuple[str, float]:
    out = cwd / "ours.json"
    secs, proc = timed([sys.executable, "-m", "modeldebug", "onnx", "compare", str(model), *reference, "--inputs", data,
                        "--json", str(out), "-q"], cwd)
    if proc.returncode != 0:
        return f"error: {proc.stderr.strip().splitlines()[-1][:80]}", secs
    report = json.loads(out.read_text())
    codes = [f["code"] for f in report["findings"]]
    d = report["comparison"]["first_divergent"]
    named = d["node"] if d else ("no finding" if not codes else ", ".join(codes))
    return named + (f" ({', '.join(c for c in codes if c not in ('ONX101', 'ONX105'))})"
                    if d and set(codes) - {"ONX101", "ONX105"} else ""), secs


def polygraphy(model: Path, clean: Path, data: str, cwd: Path) -> tuple[str, float]:
    import onnx

    poly = shutil.which("polygraphy") or str(Path(sys.executable).parent / "polygraphy")
    base = ["--onnxrt", "--onnx-outputs", "mark", "all", "--data-loader-script", data]
    t1, p1 = timed([poly, "run", str(clean), *base, "--save-outputs", "ref.json"], cwd)
    t2, p2 = timed([poly, "run", str(model), *base, "--load-outputs", "ref.json"], cwd)
    log = p2.stdout + p2.stderr
    bad = set(re.findall(r"FAILED \| Output: '([^']+)'", log))
    if p1.returncode != 0 or (p2.returncode != 0 and not bad):
        return "error: " + (p1.stdout + p1.stderr + log).strip().splitlines()[-1][:80], t1 + t2
    if not bad:
        return "no mismatch", t1 + t2
    g = onnx.load(str(model)).graph
    for n in g.node:
        if any(o in bad for o in n.output):
            return f"{n.name} (+{len(bad) - 1} more outputs)", t1 + t2
    return "?", t1 + t2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="keep the exports here")
    ap.add_argument("--only", help="one export, e.g. bert-dynamo")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="md-vs-poly-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "nets.py").write_text(NETS, encoding="utf-8")
    sys.path.insert(0, str(work))
    import nets

    rows = ["| export | fault (node changed) | modeldebug vs PyTorch | modeldebug vs clean ONNX | "
            "Polygraphy vs clean ONNX |", "|---|---|---|---|---|"]
    for name, data in (("cnn", "nets.py:cnn_data"), ("encoder", "nets.py:seq_data"), ("bert", "nets.py:seq_data")):
        for dynamo in (True, False):
            tag = f"{name}-{'dynamo' if dynamo else 'torchscript'}"
            if args.only and tag != args.only:
                continue
            clean = work / f"{tag}.onnx"
            if not export(nets, name, dynamo, clean):
                rows.append(f"| {tag} | - | export failed | | |")
                continue
            faulty = work / f"{tag}-faulty.onnx"
            changed = perturb(clean, faulty)
            for label, model in (("none", clean), (f"`{changed}`", faulty)):
                a, ta = ours(model, ["--torch", f"nets.py:{name}"], data, work)
                b, tb = ours(model, [str(clean)], data, work)  # the clean row: the export against itself
                c, tc = polygraphy(model, clean, data, work)
                fmt = lambda s, t: f"{s}, {t:.1f} s" if t else s  # noqa: E731
                rows.append(f"| {tag} | {label} | {fmt(a, ta)} | {fmt(b, tb)} | {fmt(c, tc)} |")
                print(rows[-1], file=sys.stderr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
