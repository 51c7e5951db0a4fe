"""Real-world corpus: public training scripts, run for real under ``modeldebug run``.

No third-party code lives in this repository. ``setup`` copies each script out of a local read-only
git mirror of its public repository (pinned commit), into ``/tmp/realworld/<case>/<variant>/``, and
applies the edits listed below: exact string replacements that must match (a replacement that matches
nothing stops the setup, so an edit can never silently do nothing). ``run`` times the plain script,
then the same script under ``modeldebug run``, one at a time, with ``OMP_NUM_THREADS=1``. ``table``
prints the Markdown rows of benchmarks/REALWORLD.md from what the runs left behind.

    python benchmarks/realworld/run.py snapshot         # modeldebug's src/ at HEAD (or name a commit)
    python benchmarks/realworld/run.py setup            # all cases (or name some: setup mnist vae)
    python benchmarks/realworld/run.py run              # 45-60 minutes on one busy core
    python benchmarks/realworld/run.py run mnist --variant lr_x100
    REALWORLD_WATCHED_ONLY=1 python benchmarks/realworld/run.py run   # findings only, no plain run
    python benchmarks/realworld/run.py table > /tmp/realworld/table.md

Mirrors are looked up as ``$MIRRORS/<owner>+<name>/repo`` (default /work/.mirror, where the
session's ``fetch`` tool puts them). One script (the HF Trainer one) comes from a repository that
could not be mirrored; its text is read from ``$REALWORLD_SOURCES/<owner>+<name>/<path>`` instead and
its sha256 is checked. Stand-ins for the missing torchvision and gymnasium (synthvision/, synthgym.py)
are copied next to every script that imports them; the script's import line is the only change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("REALWORLD_DIR", "/tmp/realworld"))
MIRRORS = Path(os.environ.get("MIRRORS", "/work/.mirror"))
SOURCES = Path(os.environ.get("REALWORLD_SOURCES", ROOT / "_sources"))
PYTHON = os.environ.get("PYTHON", "/work/main/.venv/bin/python")
REPO = Path(os.environ.get("MODELDEBUG_REPO", HERE.parent.parent))
# the modeldebug measured: a snapshot of one commit's src/ (others edit the working tree meanwhile)
SNAPSHOT = ROOT / "_modeldebug"
#: REALWORLD_WATCHED_ONLY=1: `run` skips the plain run (findings only, half the time; no overhead ratio).
WATCHED_ONLY = bool(os.environ.get("REALWORLD_WATCHED_ONLY"))
TIMEOUT_S = 600

PE = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
MINGPT = ("karpathy/minGPT", "37baab71b9abea1b76ab957409a1cc2fbfba8a26")
NANOGPT = ("karpathy/nanoGPT", "3adf61e154c3fe3fca428ad6bc3818b27a3b8291")
MAKEMORE = ("karpathy/makemore", "988aa59e4d8fefa526d06f3b453ad116258398d4")
LIGHTNING = ("Lightning-AI/pytorch-lightning", "7f0c3436cd3f6ad3753125672024fc415cbcb414")
HFCHAR = ("shulamite512/DATA266_LAB1_Pair44", "e5d9cd58a8b5afb70362fe99ef6bf4d5bd2986e9")
NLPT = ("graykode/nlp-tutorial", "d05e31ec81d56d70c1db89b99ab07e948f7ebc11")
YJ = ("yunjey/pytorch-tutorial", "0500d3df5a2a8080ccfccbc00aca0eacc21818db")
MZ = ("MorvanZhou/PyTorch-Tutorial", "dbe154a9e56635e51c6b0c2ccea8ae36cfb585a7")
JCJ = ("jcjohnson/pytorch-examples", "0003fcdc606a79951e53bf8f46f8574fa4739f23")
PG = ("eriklindernoren/PyTorch-GAN", "36d3c77e5ff20ebe0aeefd322326a134a279b93e")
PZ = ("hunkim/PyTorchZeroToAll", "e5a260fac0b4ff1e2ec434fc6f0d962ac97fc289")
KL = ("kuangliu/pytorch-cifar", "49b7aa97b0c12fe0d4054e670403a16b6b834ddd")
NGV = ("karpathy/ng-video-lecture", "52201428ed7b46804849dea0b3ccf0de9df1a5c3")
LX = ("L1aoXingyu/pytorch-beginner", "a57dd7ea35c9965a41f4963dee62d38884f92a65")
MRL = ("seungeunrho/minimalRL", "c8efed8481e3cd40e9739cfde220a55522555b57")
GCN = ("tkipf/pygcn", "1600b5b748b3976413d1e307540ccc62605b4d6d")
PP = ("spro/practical-pytorch", "c520c52e68e945d88fff563dba1c028b6ec0197b")
FLOWS = ("ikostrikov/pytorch-flows", "bf12ed91b86867b38d74982f5e2d44c248604df9")
ZNX = ("znxlwm/pytorch-MNIST-CelebA-GAN-DCGAN", "c88438c7807326492757623bf9117ee2eb5de8bf")
UNET = ("usuyama/pytorch-unet", "a0ec1374e06ca9161c21781302328b074f19391b")
KD = ("Joyful-Buffalo/simplest-knowledge-distillation", "fe45774ac983e7cfb3db692d7ed5964ef37ca22b")
HFCHAR_SHA256 = "7d14e49785068f773280f47721ca9ab30f0518222ee39cb2922b486cf35876c1"


@dataclass
class Edit:
    """Replace `old` by `new` in `file` (all occurrences); `old` must occur."""

    file: str
    old: str
    new: str


@dataclass
class Variant:
    name: str
    edits: list[Edit] = field(default_factory=list)
    args: list[str] | None = None  # None: the case's args
    extra_args: list[str] = field(default_factory=list)
    expect: tuple[str, ...] | None = ()  # kinds that name the root cause; () = healthy; None = not scored
    what: str = "healthy"
    # measured on the plain runs (the script's own logs), not by modeldebug: a "broken" variant that
    # trains as well as its healthy twin is not counted as a miss when nothing fires
    harmless: str = ""


@dataclass
class Case:
    name: str
    repo: tuple[str, str]
    files: dict[str, str]  # destination -> path in the repository
    script: str
    args: list[str]
    edits: list[Edit] = field(default_factory=list)  # to run offline and small (all variants)
    prepare: str | None = None  # name of a data-preparation function below
    stand_ins: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    style: str = ""
    warmup: bool = False  # one untimed plain run first (torch.compile's on-disk cache is then warm for both)


def _git_show(repo: tuple[str, str], path: str) -> bytes:
    owner_name, commit = repo
    local = SOURCES / owner_name.replace("/", "+") / path
    if repo == HFCHAR:
        data = local.read_bytes()
        if hashlib.sha256(data).hexdigest() != HFCHAR_SHA256:
            raise SystemExit(f"{local} is not the file measured (sha256 differs from {HFCHAR_SHA256})")
        return data
    git_dir = MIRRORS / owner_name.replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():  # some mirrors arrive as a work tree (tkipf/pygcn)
        git_dir = git_dir / ".git"
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout


# ----------------------------------------------------------------------------- data preparation
# Text for the language models: wikitext-2 as pytorch/examples ships it (its train.txt is not in the
# mirror, so valid.txt and test.txt stand in).


def _wikitext(name: str) -> list[str]:
    text = _git_show(PE, f"word_language_model/data/wikitext-2/{name}.txt").decode("utf8")
    return text.splitlines(keepends=True)


def prep_word_lm(d: Path) -> None:
    test, valid = _wikitext("test"), _wikitext("valid")
    out = d / "data" / "wikitext-2"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("".join(test[:700]), encoding="utf8")
    (out / "valid.txt").write_text("".join(valid[:150]), encoding="utf8")
    (out / "test.txt").write_text("".join(test[-150:]), encoding="utf8")


def prep_lightning_lm(d: Path) -> None:
    (d / "data").mkdir(exist_ok=True)
    (d / "data" / "wikitext-2.txt").write_text("".join(_wikitext("test")), encoding="utf8")


def _char_text() -> str:
    return "".join(_wikitext("valid")[:1200])


def prep_char_text(d: Path) -> None:
    (d / "input.txt").write_text(_char_text(), encoding="utf8")


def prep_hf_char(d: Path) -> None:
    (d / "input.txt").write_text(_char_text()[:6000], encoding="utf8")


def prep_nanogpt(d: Path) -> None:
    # what data/shakespeare_char/prepare.py does, on local text instead of a download
    data = _char_text()
    chars = sorted(set(data))
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = dict(enumerate(chars))
    n = len(data)
    out = d / "data" / "shakespeare_char"
    out.mkdir(parents=True, exist_ok=True)
    np.array([stoi[c] for c in data[: int(n * 0.9)]], dtype=np.uint16).tofile(out / "train.bin")
    np.array([stoi[c] for c in data[int(n * 0.9):]], dtype=np.uint16).tofile(out / "val.bin")
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)


def prep_time_seq(d: Path) -> None:
    subprocess.run([PYTHON, "generate_sine_wave.py"], cwd=d, check=True, env=_env({}))


def prep_makemore(d: Path) -> None:
    names = (d / "names.txt").read_text().splitlines()
    (d / "names.txt").write_text("\n".join(names[::4]) + "\n")  # a quarter of the names: quicker setup


def prep_lx_lm(d: Path) -> None:
    # data_utils.Corpus reads ./data/{train,valid,test}.txt, one sentence a line
    test, valid = _wikitext("test"), _wikitext("valid")
    out = d / "data"
    out.mkdir(exist_ok=True)
    (out / "train.txt").write_text("".join(test[:500]), encoding="utf8")
    (out / "valid.txt").write_text("".join(valid[:100]), encoding="utf8")
    (out / "test.txt").write_text("".join(test[-100:]), encoding="utf8")


def prep_pygcn(d: Path) -> None:
    # cora.content (7.8 MB) is absent from the mirror (listed, object missing): a synthetic citation graph
    # in its format instead. 2708 papers, 7 classes, 1433 binary word features; a stochastic block model
    # (80% of the 5429 links inside a class), each paper's ~18 words 60% from its class's 60 topic words
    rng = np.random.default_rng(0)
    n, n_cls, n_words, n_edges = 2708, 7, 1433, 5429
    names = ["Case_Based", "Genetic_Algorithms", "Neural_Networks", "Probabilistic_Methods",
             "Reinforcement_Learning", "Rule_Learning", "Theory"]
    ids = rng.choice(np.arange(30, 1_200_000), size=n, replace=False)
    y = rng.integers(0, n_cls, size=n)
    topics = [rng.choice(n_words, size=60, replace=False) for _ in range(n_cls)]
    lines = []
    for i in range(n):
        x = np.zeros(n_words, dtype=np.int64)
        k = int(rng.integers(8, 30))
        own = rng.random(k) < 0.6
        x[rng.choice(topics[y[i]], size=int(own.sum()))] = 1
        x[rng.choice(n_words, size=int((~own).sum()))] = 1
        lines.append("\t".join([str(ids[i]), *map(str, x), names[y[i]]]))
    by_class = [np.flatnonzero(y == c) for c in range(n_cls)]
    edges = set()
    while len(edges) < n_edges:
        a = int(rng.integers(n))
        b = int(rng.choice(by_class[y[a]])) if rng.random() < 0.8 else int(rng.integers(n))
        if a != b:
            edges.add((a, b))
    out = d / "data" / "cora"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cora.content").write_text("\n".join(lines) + "\n")
    (out / "cora.cites").write_text("".join(f"{ids[a]}\t{ids[b]}\n" for a, b in sorted(edges)))


def prep_unet_notebook(d: Path) -> None:
    # the training loop lives in pytorch_unet.ipynb: its code cells in order, as one script (IPython
    # magics dropped); the edits then apply to train.py
    nb = json.loads((d / "pytorch_unet.ipynb").read_text(encoding="utf8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    code = "\n\n".join(cells)
    code = "\n".join(line for line in code.splitlines() if not line.startswith("%"))
    (d / "train.py").write_text(code + "\n", encoding="utf8")


PREPARE = {f.__name__: f for f in (prep_word_lm, prep_lightning_lm, prep_char_text, prep_hf_char,
                                   prep_nanogpt, prep_time_seq, prep_makemore, prep_lx_lm, prep_pygcn,
                                   prep_unet_notebook)}

# ----------------------------------------------------------------------------- the corpus

TV = Edit("main.py", "torchvision", "synthvision")
PGTV = Edit("train.py", "torchvision", "synthvision")
LR100 = "learning rate x100"
NOZG = "zero_grad removed"
LXLABEL = Edit("train.py", "label = label.view(label.size(0)*label.size(1), 1)", "label = label.reshape(label.size(0)*label.size(1), 1)")

CASES: list[Case] = [
    Case("mnist", PE, {"main.py": "mnist/main.py"}, "main.py",
         ["--epochs", "2", "--test-batch-size", "500", "--log-interval", "20"],
         edits=[TV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": "2400", "SYNTH_TEST": "1000"},
         style="hand-written loop, Adadelta + StepLR, CNN",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "100"], expect=("lr_too_high",), what=LR100),
             Variant("no_zero_grad", [Edit("main.py", "        optimizer.zero_grad()\n        output = model(data)",
                                           "        output = model(data)")],
                     expect=("missing_zero_grad",), what=NOZG),
             Variant("raw_pixels", [Edit("main.py", "transforms.ToTensor(),\n        transforms.Normalize((0.1307,), (0.3081,))",
                                         "transforms.PILToTensor(), transforms.Lambda(lambda t: t.float())")],
                     expect=("input_not_normalized",), what="pixels fed as 0..255, no ToTensor/Normalize"),
         ]),
    Case("word_lm", PE, {f: f"word_language_model/{f}" for f in ("main.py", "data.py", "model.py")}, "main.py",
         ["--emsize", "64", "--nhid", "64", "--epochs", "3", "--log-interval", "20"],
         prepare="prep_word_lm",
         style="manual SGD (p.data.add_), clip 0.25 at lr 20, LSTM, best checkpoint reloaded for test",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "2000"], expect=("lr_too_high",), what=LR100),
             Variant("no_zero_grad", [Edit("main.py", "        else:\n            model.zero_grad()",
                                           "        else:\n            pass")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("time_seq", PE, {"train.py": "time_sequence_prediction/train.py",
                          "generate_sine_wave.py": "time_sequence_prediction/generate_sine_wave.py"}, "train.py",
         ["--steps", "2"], prepare="prep_time_seq",
         edits=[Edit("generate_sine_wave.py", "L = 1000", "L = 100"),
                # torch >= 2.6 loads with weights_only=True, which refuses the numpy array the
                # example saves: the example fails as published; this is the fix its error suggests
                Edit("train.py", "torch.load('traindata.pt')", "torch.load('traindata.pt', weights_only=False)")],
         style="LBFGS with a closure, LSTMCell, float64",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "lr=0.8", "lr=80")], expect=("lr_too_high",), what=LR100),
         ]),
    Case("regression", PE, {"main.py": "regression/main.py"}, "main.py", [],
         edits=[Edit("main.py", "POLY_DEGREE = 4\n", "torch.manual_seed(0)\nPOLY_DEGREE = 4\n"),
                Edit("main.py", "for batch_idx in count(1):", "for batch_idx in range(1, 2001):")],
         style="manual SGD, no optimizer, no nn.Module of its own (a bare nn.Linear), runs until loss < 1e-3",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("main.py", "-0.1 * param.grad", "-10 * param.grad")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    Case("dcgan", PE, {"main.py": "dcgan/main.py"}, "main.py",
         ["--dataset", "mnist", "--dataroot", "data", "--workers", "0", "--batchSize", "32", "--ngf", "16",
          "--ndf", "16", "--niter", "1", "--manualSeed", "1", "--outf", "out"],
         edits=[TV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": "1600"},
         style="GAN: two models, two Adam optimizers, detach() of the fake batch for D",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "0.02"], expect=("lr_too_high",), what=LR100),
             Variant("no_zero_grad_D", [Edit("main.py", "        netD.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what="netD.zero_grad() removed"),
         ]),
    Case("vae", PE, {"main.py": "vae/main.py"}, "main.py", ["--epochs", "2"],
         edits=[TV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": "4096", "SYNTH_TEST": "512"},
         style="VAE, BCE (sum) + KL, Adam",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("main.py", "lr=1e-3", "lr=1e-1")], expect=("lr_too_high",), what=LR100),
             Variant("no_zero_grad", [Edit("main.py", "        optimizer.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("reinforce", PE, {"main.py": "reinforcement_learning/reinforce.py"}, "main.py", [],
         edits=[Edit("main.py", "import gymnasium as gym", "import synthgym as gym"),
                Edit("main.py", "for i_episode in count(1):", "for i_episode in range(1, 121):")],
         stand_ins=("synthgym.py",),
         style="REINFORCE policy gradient on CartPole, one update per episode, softmax policy",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("main.py", "lr=1e-2", "lr=1.0")], expect=("lr_too_high",), what=LR100),
         ]),
    Case("actor_critic", PE, {"main.py": "reinforcement_learning/actor_critic.py"}, "main.py", ["--seed", "1"],
         edits=[Edit("main.py", "import gymnasium as gym", "import synthgym as gym"),
                Edit("main.py", "for i_episode in count(1):", "for i_episode in range(1, 101):")],
         stand_ins=("synthgym.py",),
         style="actor-critic on CartPole, two heads, per-sample forward with batch size 1",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("main.py", "lr=3e-2", "lr=3.0")], expect=("lr_too_high",), what=LR100),
             Variant("seed543", args=[], expect=None,
                     what="the script's default seed: here the policy collapses at once (reward ~9.5); not scored"),
         ]),
    Case("mingpt_char", MINGPT, {"chargpt.py": "projects/chargpt/chargpt.py", "mingpt/__init__.py": "mingpt/__init__.py",
                                 "mingpt/model.py": "mingpt/model.py", "mingpt/trainer.py": "mingpt/trainer.py",
                                 "mingpt/utils.py": "mingpt/utils.py", "mingpt/bpe.py": "mingpt/bpe.py"},
         "chargpt.py",
         ["--model.model_type=None", "--model.n_layer=2", "--model.n_head=4", "--model.n_embd=64",
          "--data.block_size=64", "--trainer.batch_size=32", "--trainer.max_iters=200",
          "--trainer.num_workers=0", "--system.work_dir=out"],
         prepare="prep_char_text",
         style="small GPT, its own Trainer class with callbacks, AdamW with decay groups, clip 1.0",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--trainer.learning_rate=0.05"], expect=("lr_too_high",), what=LR100),
             Variant("softmax_before_ce", [Edit("mingpt/model.py", "F.cross_entropy(logits.view(-1, logits.size(-1))",
                                                "F.cross_entropy(F.softmax(logits, dim=-1).view(-1, logits.size(-1))")],
                     expect=("double_softmax",), what="softmax applied before F.cross_entropy"),
             Variant("detached_attn", [Edit("mingpt/model.py", "x = x + self.attn(self.ln_1(x))",
                                            "x = x + self.attn(self.ln_1(x)).detach()")],
                     expect=("params_not_updating",), what="attention output detached in every block"),
             Variant("no_causal_mask", [Edit("mingpt/model.py",
                                             "        att = att.masked_fill(self.bias[:,:,:T,:T] == 0, float('-inf'))\n", "")],
                     expect=("data_leakage",), what="the causal mask line removed: every position attends to the next"),
         ]),
    Case("nanogpt_accum", NANOGPT, {f: f for f in ("train.py", "model.py", "configurator.py",
                                                     "config/train_shakespeare_char.py")}, "train.py",
         ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=10",
          "--eval_interval=100", "--log_interval=10", "--block_size=64", "--batch_size=16", "--n_layer=2",
          "--n_head=4", "--n_embd=64", "--max_iters=150", "--lr_decay_iters=150", "--warmup_iters=20",
          "--dropout=0.0", "--gradient_accumulation_steps=4"],
         prepare="prep_nanogpt",
         style="GPT, gradient accumulation over 4 micro-batches, cosine LR by hand, fused param groups",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--learning_rate=0.1"], expect=("lr_too_high",), what=LR100),
             Variant("no_zero_grad", [Edit("train.py", "    optimizer.zero_grad(set_to_none=True)\n",
                                           "    pass\n")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("nanogpt_amp", NANOGPT, {f: f for f in ("train.py", "model.py", "configurator.py",
                                                   "config/train_shakespeare_char.py")}, "train.py",
         ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--dtype=bfloat16",
          "--eval_iters=10", "--eval_interval=100", "--log_interval=10", "--block_size=64", "--batch_size=32",
          "--n_layer=2", "--n_head=4", "--n_embd=64", "--max_iters=200", "--lr_decay_iters=200",
          "--warmup_iters=20", "--dropout=0.0"],
         edits=[Edit("train.py", "ctx = nullcontext() if device_type == 'cpu' else torch.amp.autocast",
                     "ctx = torch.amp.autocast")],
         prepare="prep_nanogpt",
         style="GPT under CPU autocast bfloat16 (the script's CUDA path, enabled on CPU)",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--learning_rate=0.1"], expect=("lr_too_high",), what=LR100),
         ]),
    Case("nanogpt_compile", NANOGPT, {f: f for f in ("train.py", "model.py", "configurator.py",
                                                       "config/train_shakespeare_char.py")}, "train.py",
         ["config/train_shakespeare_char.py", "--device=cpu", "--compile=True", "--eval_iters=10",
          "--eval_interval=100", "--log_interval=10", "--block_size=64", "--batch_size=32", "--n_layer=2",
          "--n_head=4", "--n_embd=64", "--max_iters=200", "--lr_decay_iters=200", "--warmup_iters=20",
          "--dropout=0.0"],
         prepare="prep_nanogpt",
         style="GPT through torch.compile (inductor, CPU)", warmup=True,
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--learning_rate=0.1"], expect=("lr_too_high",), what=LR100),
         ]),
    Case("makemore", MAKEMORE, {"makemore.py": "makemore.py", "names.txt": "names.txt"}, "makemore.py",
         ["--type", "gru", "--max-steps", "600", "--num-workers", "0", "--work-dir", "out"],
         prepare="prep_makemore",
         style="char-level GRU written by hand (GRU cell from Linear layers), padded targets ignore_index=-1",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--learning-rate", "0.05"], expect=("lr_too_high",), what=LR100,
                     harmless="test loss 2.35 vs 2.30 healthy at step 500"),
             Variant("no_zero_grad", [Edit("makemore.py", "        model.zero_grad(set_to_none=True)\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("lightning_lm", LIGHTNING, {"transformer.py": "examples/pytorch/basics/transformer.py"}, "transformer.py", [],
         edits=[Edit("transformer.py", "L.Trainer(gradient_clip_val=0.25, max_epochs=20)",
                     "L.Trainer(gradient_clip_val=0.25, max_epochs=1, limit_train_batches=80, "
                     "limit_val_batches=5, limit_test_batches=5, enable_progress_bar=False)")],
         prepare="prep_lightning_lm",
         style="Lightning Trainer, Transformer LM, SGD, clip 0.25",
         variants=[
             # Scored as healthy until 2026-12-06 (third round); the future-leak probe showed otherwise.
             Variant("as_written", expect=("data_leakage",),
                     what="as published: lightning.pytorch.demos.Transformer computes a causal src_mask and never "
                          "passes it to nn.Transformer, so the encoder reads the whole input, the next token "
                          "included (issue #20920; PR #21033's fix computes the mask only); its decoder is also "
                          "fed the targets themselves under a mask that includes the diagonal"),
             Variant("lr_x100", [Edit("transformer.py", "lr=0.1", "lr=10.0")], expect=("lr_too_high",), what=LR100,
                     harmless="test loss 4.28 vs 8.09 as written: with clip 0.25 the larger rate trains better "
                              "(and copies the leaked next token sooner)"),
         ]),
    # graykode/nlp-tutorial: self-contained toy models on a few embedded sentences, one-hot inputs (added 2026-12-06)
    Case("nlpt_seq2seq", NLPT, {"train.py": "4-1.Seq2Seq/Seq2Seq.py"}, "train.py", [], env={"MPLBACKEND": "Agg"},
         style="RNN encoder-decoder, time-first inside forward, a [6 steps, 6 pairs, 29] output, Adam",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "lr=0.001", "lr=0.1")], expect=("lr_too_high",), what=LR100),
         ]),
    Case("nlpt_bilstm", NLPT, {"train.py": "3-3.Bi-LSTM/Bi-LSTM.py"}, "train.py", [], env={"MPLBACKEND": "Agg"},
         style="bidirectional LSTM next-word model, time-first, Adam, 10,000 full-batch steps",
         variants=[
             # as published: out[-1] of a bidirectional LSTM, where the reverse direction has taken one step
             Variant("as_written", expect=("params_not_updating",),
                     what="as published: `outputs[-1]` of a bidirectional LSTM (the reverse direction's recurrence "
                          "never reaches the loss)"),
             Variant("fixed", [Edit("train.py", "outputs = outputs[-1]  # [batch_size, n_hidden]",
                                    "outputs = torch.cat([outputs[-1, :, :n_hidden], outputs[0, :, n_hidden:]], 1)")],
                     what="healthy: each direction read where it has seen the whole sentence"),
         ]),
    Case("nlpt_textrnn", NLPT, {"train.py": "3-1.TextRNN/TextRNN.py"}, "train.py", [], env={"MPLBACKEND": "Agg"},
         style="RNN next-word model on 3 sentences, 7 one-hot words, Adam",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "lr=0.001", "lr=0.1")], expect=("lr_too_high",), what=LR100,
                     harmless="cost 2e-6 vs 2.1e-3 healthy, the same three right answers: Adam at 0.1 memorises 3 sentences faster"),
         ]),
    # yunjey/pytorch-tutorial, MNIST through the synthvision stand-in (added 2026-12-06)
    Case("yj_birnn", YJ, {"main.py": "tutorials/02-intermediate/bidirectional_recurrent_neural_network/main.py"},
         "main.py", [], edits=[TV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": "3000", "SYNTH_TEST": "1000"},
         style="2-layer bidirectional LSTM over image rows (batch_first), Adam",
         variants=[
             Variant("as_written", expect=("params_not_updating",),
                     what="as published: `out[:, -1, :]` of a bidirectional LSTM (the last layer's reverse "
                          "recurrence never reaches the loss)"),
             Variant("fixed", [Edit("main.py", "out = self.fc(out[:, -1, :])",
                                    "out = self.fc(torch.cat([out[:, -1, :self.hidden_size], "
                                    "out[:, 0, self.hidden_size:]], 1))")],
                     what="healthy: each direction read where it has seen every row"),
         ]),
    Case("yj_vae", YJ, {"main.py": "tutorials/03-advanced/variational_autoencoder/main.py"}, "main.py", [],
         edits=[TV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": "3000", "SYNTH_TEST": "1000"},
         style="VAE, F.binary_cross_entropy(..., size_average=False) (the deprecated spelling of a summed loss), Adam",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("main.py", "learning_rate = 1e-3", "learning_rate = 1e-1")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    # MorvanZhou/PyTorch-Tutorial: tiny scripts on data they make themselves (added 2026-12-06, second round)
    Case("mz_regression", MZ, {"train.py": "tutorial-contents/301_regression.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"}, style="full-batch regression of x^2 (100 points), 1-10-1 ReLU net, SGD 0.2, a plot every 5 steps",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "lr=0.2", "lr=20")], expect=("lr_too_high",), what=LR100),
         ]),
    Case("mz_classification", MZ, {"train.py": "tutorial-contents/302_classification.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"}, style="full-batch 2-class blobs, CrossEntropyLoss, SGD, a plot every 2 steps",
         variants=[
             Variant("healthy"),
             Variant("double_softmax", [Edit("train.py", "        x = self.out(x)\n",
                                             "        x = F.softmax(self.out(x), dim=1)\n")],
                     expect=("double_softmax",), what="softmax before CrossEntropyLoss"),
         ]),
    Case("mz_optimizer", MZ, {"train.py": "tutorial-contents/306_optimizer.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"},
         style="four nets, each with its own optimizer (SGD, momentum, RMSprop, Adam), stepped in turn on each batch",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad", [Edit("train.py", "                opt.zero_grad()                # clear gradients for next train\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("mz_rnn_regressor", MZ, {"train.py": "tutorial-contents/403_RNN_regressor.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"}, style="RNN sin->cos, batch of 1, hidden state carried (detached) between steps, Adam",
         variants=[Variant("healthy")]),
    Case("mz_gan", MZ, {"train.py": "tutorial-contents/406_GAN.py"}, "train.py", [],
         edits=[Edit("train.py", "for step in range(10000):", "for step in range(2000):")], env={"MPLBACKEND": "Agg"},
         style="GAN on synthetic curves, G's loss through D, D's loss with retain_graph, two Adams",
         variants=[Variant("healthy")]),
    Case("mz_cgan", MZ, {"train.py": "tutorial-contents/406_conditional_GAN.py"}, "train.py", [],
         edits=[Edit("train.py", "for step in range(10000):", "for step in range(2000):")], env={"MPLBACKEND": "Agg"},
         style="conditional GAN: D stepped, then G's loss (computed before D's step, through D) backpropagated",
         variants=[
             Variant("as_written", expect=("inplace_modification",),
                     what="as published: crashes on torch >= 1.5 (D's step changed D's weights in place before G's "
                          "backward pass through D)"),
             Variant("fixed", [Edit("train.py", "    opt_G.zero_grad()\n    G_loss.backward()\n",
                                    "    G_loss = torch.mean(torch.log(1. - D(D_inputs1)))  # D after its step\n"
                                    "    opt_G.zero_grad()\n    G_loss.backward()\n")],
                     what="healthy: G's loss from D after its step"),
         ]),
    Case("mz_dropout", MZ, {"train.py": "tutorial-contents/503_dropout.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"},
         style="two nets (with and without dropout) on 20 points: both losses backpropagated, then both Adams stepped",
         variants=[Variant("healthy")]),
    Case("mz_batchnorm", MZ, {"train.py": "tutorial-contents/504_batch_normalization.py"}, "train.py", [],
         env={"MPLBACKEND": "Agg"},
         style="two 8-layer tanh nets (with and without batch norm) stepped in turn, DataLoader, Adam",
         variants=[
             Variant("as_written", expect=("poor_initialization",),
                     what="as published: the tutorial's deliberately bad initialisation (weights N(0, 0.1), biases "
                          "-0.2) for its net without batch norm"),
             Variant("good_init", [Edit("train.py", "B_INIT = -0.2", "B_INIT = 0."),
                                   Edit("train.py", "init.normal_(layer.weight, mean=0., std=.1)",
                                        "init.xavier_normal_(layer.weight)")], expect=None,
                     what="not scored: Xavier weights and zero biases, but the net without batch norm still feeds "
                          "raw inputs up to 10 into tanh (its first layer saturates: a vanishing gradient is "
                          "plausible), so not a healthy twin"),
         ]),
    # jcjohnson/pytorch-examples: a two-layer net on random data, written five ways (added 2026-12-06)
    Case("jcj_nn", JCJ, {"train.py": "nn/two_layer_net_nn.py"}, "train.py", [],
         style="random x -> random y, MSELoss(reduction='sum'), weights updated by hand (no optimizer)",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "learning_rate = 1e-4", "learning_rate = 1e-2")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    Case("jcj_optim", JCJ, {"train.py": "nn/two_layer_net_optim.py"}, "train.py", [],
         style="random x -> random y, MSELoss(reduction='sum'), Adam",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad", [Edit("train.py", "  optimizer.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("jcj_module", JCJ, {"train.py": "nn/two_layer_net_module.py"}, "train.py", [],
         style="custom nn.Module, MSELoss(reduction='sum'), SGD 1e-4", variants=[Variant("healthy")]),
    Case("jcj_dynamic", JCJ, {"train.py": "nn/dynamic_net.py"}, "train.py", [],
         style="a random 0-3 repeats of one shared middle layer per forward pass, SGD with momentum",
         variants=[Variant("healthy")]),
    Case("jcj_autograd", JCJ, {"train.py": "autograd/two_layer_net_autograd.py"}, "train.py", [],
         style="raw tensors with requires_grad, no nn.Module, no optimizer", variants=[Variant("healthy")]),
    # eriklindernoren/PyTorch-GAN: GANs on MNIST through the synthvision stand-in (added 2026-12-06, third
    # round): two optimizers in turn, n_critic loops, weight clipping, gradient penalties (double backward)
    *[Case(f"pg_{n}", PG, {"train.py": f"implementations/{n}/{n}.py"}, "train.py", ["--n_epochs", str(epochs), "--n_cpu", "0"],
           edits=[PGTV], stand_ins=("synthvision",), env={"SYNTH_TRAIN": str(size)}, style=style,
           variants=variants or [Variant("healthy")])
      for n, epochs, size, style, variants in (
        ("gan", 5, 3200, "MLP GAN, BCELoss on sigmoid outputs, two Adams", [
            Variant("healthy"),
            Variant("no_zero_grad", [Edit("train.py", "        optimizer_D.zero_grad()\n", "")],
                    expect=("missing_zero_grad",), what="the discriminator's zero_grad removed"),
        ]),
        ("cgan", 5, 3200, "conditional MLP GAN (label embedding), MSELoss", None),
        ("aae", 5, 3200, "adversarial autoencoder: encoder+decoder in one Adam, reparameterisation", None),
        ("wgan", 5, 3200, "WGAN: 5 critic steps per generator step, weights clamped after each, RMSprop", None),
        ("wgan_gp", 5, 3200, "WGAN-GP: gradient penalty through autograd.grad(create_graph=True)", None),
        ("wgan_div", 5, 3200, "WGAN-div: a divergence penalty through autograd.grad", None),
        ("dcgan", 1, 3200, "DCGAN: conv G and D, BatchNorm, N(0, 0.02) init", None),
        ("lsgan", 1, 3200, "least-squares GAN: MSELoss, conv G and D", None),
        ("relativistic_gan", 1, 3200, "relativistic GAN: losses of D(real) - D(fake), conv G and D", None),
        ("ebgan", 1, 1600, "energy-based GAN: an autoencoder discriminator, pull-away term", None),
        ("acgan", 1, 3200, "auxiliary-classifier GAN: D's class head trained with CrossEntropyLoss", [
            Variant("as_written", expect=("double_softmax",),
                    what="as published: D's class head ends in nn.Softmax() and feeds CrossEntropyLoss "
                         "(the repository's issues #141, #150 and PRs #98, #186)"),
            Variant("fixed", [Edit("train.py", "opt.n_classes), nn.Softmax())", "opt.n_classes))")],
                    what="healthy: the class head returns logits"),
        ]),
        ("sgan", 1, 3200, "semi-supervised GAN: D classifies n+1 classes with CrossEntropyLoss", [
            Variant("as_written", expect=("double_softmax",),
                    what="as published: D's class head ends in nn.Softmax() and feeds CrossEntropyLoss"),
            Variant("fixed", [Edit("train.py", "opt.num_classes + 1), nn.Softmax())", "opt.num_classes + 1))")],
                    what="healthy: the class head returns logits (G still defines an Embedding it never uses)"),
        ]),
        ("infogan", 1, 1600, "InfoGAN: categorical and continuous codes, an info loss stepped with both nets' weights", [
            Variant("as_written", expect=("double_softmax",),
                    what="as published: the categorical head ends in nn.Softmax() and feeds CrossEntropyLoss "
                         "(the repository's issue #84)"),
            Variant("fixed", [Edit("train.py", "opt.n_classes), nn.Softmax())", "opt.n_classes))")],
                    what="healthy: the categorical head returns logits"),
        ]),
        ("began", 1, 3200, "BEGAN: an autoencoder discriminator, the k_t balance term", [
            Variant("as_written", expect=("runtime_error",),
                    what="as published: `(...).data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
            Variant("fixed", [Edit("train.py", "torch.abs(diff)).data[0]", "torch.abs(diff)).item()")],
                    what="healthy: .item()"),
        ]),
        ("softmax_gan", 1, 3200, "Softmax GAN: one partition function over real and fake scores", [
            Variant("as_written", expect=("inplace_modification",),
                    what="as published: crashes on current torch (a tensor saved for backward modified in place)"),
        ]),
      )],
    # hunkim/PyTorchZeroToAll: a lecture series' scripts, data in the repository (added 2026-12-07)
    Case("pz_diabetes", PZ, {"train.py": "07_diabets_logistic.py", "data/diabetes.csv.gz": "data/diabetes.csv.gz"},
         "train.py", [], style="full-batch 8-6-4-1 sigmoid MLP on the diabetes table (raw columns), BCELoss, SGD 0.1",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad", [Edit("train.py", "    optimizer.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("pz_diabetes_loader", PZ, {"train.py": "08_2_dataset_loade_logistic.py",
                                    "data/diabetes.csv.gz": "data/diabetes.csv.gz"},
         "train.py", [], style="the same MLP through a Dataset and a DataLoader with 2 worker processes, "
                               "BCELoss(reduction='sum'), SGD 0.1, 2 epochs",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "lr=0.1)", "lr=10)")], expect=("lr_too_high",), what=LR100),
         ]),
    Case("pz_cnn_mnist", PZ, {"train.py": "10_1_cnn_mnist.py"}, "train.py", [],
         edits=[Edit("train.py", "torchvision", "synthvision"), Edit("train.py", "for epoch in range(1, 10):", "for epoch in range(1, 3):")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "3200", "SYNTH_TEST": "640"},
         style="2-conv CNN, F.log_softmax without dim, F.nll_loss, SGD momentum 0.5; its test pass uses "
               "the removed Variable(volatile=True) and so builds graphs",
         variants=[
             Variant("healthy"),
             Variant("softmax_nll", [Edit("train.py", "        return F.log_softmax(x)", "        return F.softmax(x)")],
                     expect=("double_softmax",), what="softmax probabilities into F.nll_loss (log_softmax replaced)"),
         ]),
    Case("pz_inception", PZ, {"train.py": "11_1_toy_inception_mnist.py"}, "train.py", [],
         edits=[Edit("train.py", "torchvision", "synthvision"), Edit("train.py", "for epoch in range(1, 10):", "for epoch in range(1, 3):")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6400", "SYNTH_TEST": "640"},
         style="two toy Inception blocks (four branches concatenated), F.nll_loss, SGD momentum 0.5",
         variants=[
             Variant("as_written", expect=("runtime_error",),
                     what="as published: `loss.data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
             Variant("fixed", [Edit("train.py", "loss.data[0]", "loss.item()"),
                               Edit("train.py", "size_average=False).data[0]", "size_average=False).item()")],
                     what="healthy: .item()"),
         ]),
    Case("pz_hello_rnn", PZ, {"train.py": "12_2_hello_rnn.py"}, "train.py", [],
         style="one RNN cell fed one character at a time (batch 1), losses summed over the word, Adam 0.1",
         variants=[Variant("healthy")]),
    Case("pz_rnn_emb", PZ, {"train.py": "12_4_hello_rnn_emb.py"}, "train.py", [],
         style="Embedding + RNN over one 6-character sequence, CrossEntropyLoss, Adam 0.1",
         variants=[Variant("healthy")]),
    Case("pz_rnn_class", PZ, {"train.py": "13_2_rnn_classification.py", "name_dataset.py": "name_dataset.py",
                              "data/names_train.csv.gz": "data/names_train.csv.gz",
                              "data/names_test.csv.gz": "data/names_test.csv.gz"}, "train.py", [],
         edits=[Edit("train.py", "N_EPOCHS = 100", "N_EPOCHS = 2")],
         style="names -> country: Embedding, 2-layer bidirectional GRU over pack_padded_sequence (time first), "
               "Adam, classifier.zero_grad()",
         variants=[
             Variant("as_written", expect=("runtime_error",),
                     what="as published: `loss.data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
             Variant("item_fixed", [Edit("train.py", "loss.data[0]", "loss.item()")], expect=("params_not_updating",),
                     what="the crash fixed (.item()); still as published otherwise: the head reads hidden[-1] of a "
                          "2-layer bidirectional GRU, the top layer's reverse direction only, so the top layer's "
                          "forward weights never reach the loss (their gradient is exactly zero). Labelled healthy "
                          "before the first run; OPT001 found it"),
             Variant("both_directions", [Edit("train.py", "loss.data[0]", "loss.item()"),
                                         Edit("train.py", "self.fc = nn.Linear(hidden_size, output_size)",
                                              "self.fc = nn.Linear(hidden_size * self.n_directions, output_size)"),
                                         Edit("train.py", "fc_output = self.fc(hidden[-1])",
                                              "fc_output = self.fc(torch.cat([hidden[-2], hidden[-1]], dim=1))")],
                     what="healthy: .item(), and the head reads both directions of the top layer"),
         ]),
    Case("pz_char_rnn", PZ, {"train.py": "13_3_char_rnn.py", "text_loader.py": "text_loader.py",
                             "data/shakespeare.txt.gz": "data/shakespeare.txt.gz"}, "train.py", [],
         edits=[Edit("train.py", "n_epochs = 100", "n_epochs = 1"),
                Edit("train.py", "            loss = train(lines[0])  # Batch size is 1\n",
                     "            if i == 400:\n                break\n            loss = train(lines[0])  # Batch size is 1\n")],
         style="a 3-layer GRU fed one character at a time, its own argmax fed back (no teacher forcing), "
               "losses summed over a line, Adam",
         variants=[
             Variant("as_written", expect=("shape_mismatch", "loss_shape_mismatch"),
                     what="as published: `criterion(output, target[c])` gives CrossEntropyLoss a 0-dim target for a "
                          "batch of one, refused since torch 0.4 (and `loss.data[0]` after it would fail too)"),
             Variant("fixed", [Edit("train.py", "loss += criterion(output, target[c])", "loss += criterion(output, target[c:c + 1])"),
                               Edit("train.py", "    return loss.data[0] / len(input)", "    return loss.item() / len(input)")],
                     what="healthy: a one-element target, .item()"),
         ]),
    # kuangliu/pytorch-cifar: the widely copied CIFAR-10 trainer, through synthvision (added 2026-12-07)
    Case("kl_lenet", KL, {"main.py": "main.py", "utils.py": "utils.py",
                          **{f"models/{m}.py": f"models/{m}.py" for m in ("lenet",)}}, "main.py", [],
         edits=[TV, Edit("main.py", "from models import *", "from models.lenet import LeNet"),
                Edit("main.py", "net = SimpleDLA()", "net = LeNet()"),
                Edit("main.py", "start_epoch+200", "start_epoch+3"),
                Edit("utils.py", "_, term_width = os.popen('stty size', 'r').read().split()", "term_width = 80")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "4096", "SYNTH_TEST": "1000"},
         style="SGD 0.1 momentum 0.9 weight decay 5e-4, CosineAnnealingLR, RandomCrop + flip, a DataLoader with "
               "2 workers, best checkpoint saved",
         variants=[
             Variant("as_written", expect=("lr_too_high",),
                     what="as published: lr 0.1, the repository's default for its batch-normalised ResNets, on LeNet "
                          "(no normalisation). Labelled healthy before the first run; after LRN001 fired, plain runs at "
                          "0.1 / 0.03 / 0.01 ended at 70% / 99% / 97% training accuracy: 0.1 is too high here"),
             Variant("healthy", extra_args=["--lr", "0.01"], what="healthy: lr 0.01"),
             Variant("double_softmax", [Edit("main.py", "        loss = criterion(outputs, targets)\n        loss.backward()",
                                             "        loss = criterion(F.softmax(outputs, dim=1), targets)\n        loss.backward()")],
                     extra_args=["--lr", "0.01"], expect=("double_softmax",),
                     what="softmax before CrossEntropyLoss in the training step"),
             Variant("no_zero_grad", [Edit("main.py", "        optimizer.zero_grad()\n", "")], extra_args=["--lr", "0.01"],
                     expect=("missing_zero_grad",), what=NOZG),
             Variant("lr_x100", extra_args=["--lr", "1"], expect=("lr_too_high",), what=LR100 + " (of the healthy 0.01)"),
         ]),
    # karpathy/ng-video-lecture: the "Let's build GPT" lecture's scripts on tiny Shakespeare (added 2026-12-07)
    Case("ngv_gpt", NGV, {"gpt.py": "gpt.py", "input.txt": "input.txt"}, "gpt.py", [],
         edits=[Edit("gpt.py", "batch_size = 64", "batch_size = 16"), Edit("gpt.py", "block_size = 256", "block_size = 32"),
                Edit("gpt.py", "max_iters = 5000", "max_iters = 400"), Edit("gpt.py", "eval_interval = 500", "eval_interval = 100"),
                Edit("gpt.py", "eval_iters = 200", "eval_iters = 20"), Edit("gpt.py", "n_embd = 384", "n_embd = 64"),
                Edit("gpt.py", "n_head = 6", "n_head = 4"), Edit("gpt.py", "n_layer = 6", "n_layer = 2")],
         style="GPT from scratch: per-head attention modules with a registered tril mask, dropout 0.2, AdamW",
         variants=[
             Variant("healthy"),
             Variant("no_causal_mask", [Edit("gpt.py", "        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf')) # (B, T, T)\n", "")],
                     expect=("data_leakage",), what="the causal mask's masked_fill removed"),
             Variant("lr_x100", [Edit("gpt.py", "learning_rate = 3e-4", "learning_rate = 3e-2")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    Case("ngv_bigram", NGV, {"bigram.py": "bigram.py", "input.txt": "input.txt"}, "bigram.py", [],
         style="a bigram table (one Embedding) trained with AdamW 1e-2, 3,000 steps",
         variants=[Variant("healthy")]),
    # L1aoXingyu/pytorch-beginner: a widely copied beginner's course, one script a lesson (added 2026-12-07)
    Case("lx_logistic", LX, {"train.py": "02-Logistic Regression/Logistic_Regression.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", "num_epochs = 100", "num_epochs = 3")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6000", "SYNTH_TEST": "1000"},
         style="logistic regression (one Linear) on flattened images, CrossEntropyLoss, SGD 1e-3, batch 64",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad", [Edit("train.py", "        optimizer.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    Case("lx_nn", LX, {"train.py": "03-Neural Network/neural_network.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", "num_epochs = 50", "num_epochs = 3")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6000", "SYNTH_TEST": "1000"},
         style="784-300-100-10 MLP, CrossEntropyLoss, SGD 1e-2, batch 64",
         variants=[
             Variant("as_written", expect=("double_softmax", "dead_activations"),
                     what="as published: the last layer is `nn.Linear(100, 10), nn.ReLU(True)`, so the logits given "
                          "to CrossEntropyLoss are never negative (plain, 3 epochs: test accuracy 0.674 against 0.993 "
                          "without the ReLU). Labelled after the first run, in which nothing fired"),
             Variant("no_output_relu", [Edit("train.py", "            nn.Linear(n_hidden_2, out_dim),\n            nn.ReLU(True))",
                                             "            nn.Linear(n_hidden_2, out_dim))")],
                     what="healthy: no ReLU on the logits"),
         ]),
    Case("lx_rnn", LX, {"train.py": "05-Recurrent Neural Network/recurrent_network.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", "num_epoches = 20", "num_epoches = 2")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "4000", "SYNTH_TEST": "1000"},
         style="a 2-layer LSTM reads an image row by row (batch_first), the last step into a Linear head, Adam 1e-3",
         variants=[
             Variant("as_written", expect=("runtime_error",),
                     what="as published: `loss.data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
             Variant("fixed", [Edit("train.py", "loss.data[0]", "loss.item()"), Edit("train.py", "num_correct.data[0]", "num_correct.item()")],
                     what="healthy: .item()"),
         ]),
    Case("lx_seq_lstm", LX, {"train.py": "06-Natural Language Process/seq-lstm.py"}, "train.py", [],
         edits=[Edit("train.py", "for epoch in range(300):", "for epoch in range(150):")],
         style="an LSTM part-of-speech tagger over word embeddings and a character-level LSTM per word, "
               "log_softmax into CrossEntropyLoss, SGD 1e-2, one sentence a step",
         variants=[
             Variant("as_written", expect=("runtime_error",),
                     what="as published: `loss.data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
             Variant("item_fixed", [Edit("train.py", "loss.data[0]", "loss.item()")], expect=("params_not_updating",),
                     what="the crash fixed (.item()), otherwise as published: each word's character-LSTM output is taken "
                          "with `.data` (`torch.cat((char, tempchar.cpu().data), 0)`) and re-wrapped in `Variable(char)`, "
                          "a new leaf: the character LSTM and its embedding never receive a gradient"),
             Variant("healthy", [Edit("train.py", "loss.data[0]", "loss.item()"),
                                 Edit("train.py", "char = torch.cat((char, tempchar.cpu().data), 0)",
                                      "char = torch.cat((char, tempchar.cpu()), 0)"),
                                 Edit("train.py", "        char = Variable(char)\n", "")],
                     what="healthy: .item(), and the character LSTM's output kept in the graph (both `.data` and the "
                          "`Variable(char)` that re-wraps it cut it; the first healthy twin removed only `.data`, and "
                          "OPT001 still found the character LSTM without gradients)"),
         ]),
    Case("lx_lm", LX, {"train.py": "07-Language Model/language model.py", "data_utils.py": "07-Language Model/data_utils.py"},
         "train.py", [],
         edits=[Edit("train.py", "Variable(state.data).cuda()", "Variable(state.data)"),
                Edit("train.py", "                                   1024)).cuda()", "                                   256))"),
                Edit("train.py", "model = languagemodel(vocab_size, 128, 1024, 1)", "model = languagemodel(vocab_size, 64, 256, 1)"),
                Edit("train.py", "for epoch in range(5):", "for epoch in range(2):")],
         prepare="prep_lx_lm",
         style="word-level LSTM language model on wikitext-2 text (500 lines), 20 streams x 30 tokens, hidden state "
               "carried across windows, clip_grad_norm 0.5, Adam 1e-3 (CUDA calls removed, hidden 1024 -> 256)",
         variants=[
             Variant("cpu_as_written", expect=("runtime_error",),
                     what="as published on a CPU: the CPU branch's `Variabel(input_x)` raises NameError"),
             Variant("cpu_fixed", [Edit("train.py", "Variabel(", "Variable(")], expect=("shape_mismatch", "runtime_error"),
                     what="the NameError fixed: `label.view(...)` of a column slice raises RuntimeError (not contiguous)"),
             Variant("item_fixed", [Edit("train.py", "Variabel(", "Variable("), Edit("train.py", "loss.data[0]", "loss.item()"),
                                    LXLABEL],
                     expect=("label_issue",),
                     harmless="at this size (2 epochs, 108 steps) it ends where the healthy twin does: last "
                              "logged loss 6.49 against 6.45, epoch sums 338 against 330; both learn little beyond "
                              "word frequencies",
                     what="the crashes fixed (.reshape, .item()), otherwise as published: the targets are the NEXT 30-token window "
                          "(`train_id[:, i+30:i+60]`), not the input shifted by one token"),
             Variant("healthy", [Edit("train.py", "Variabel(", "Variable("), Edit("train.py", "loss.data[0]", "loss.item()"), LXLABEL,
                                 Edit("train.py", "label = train_id[:, (i+seq_length):(i+2*seq_length)]",
                                      "label = train_id[:, (i+1):(i+seq_length+1)]")],
                     what="healthy: targets shifted by one token"),
         ]),
    Case("lx_ae", LX, {"train.py": "08-AutoEncoder/simple_autoencoder.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", "model = autoencoder().cuda()", "model = autoencoder()"),
                Edit("train.py", "Variable(img).cuda()", "Variable(img)"), Edit("train.py", "num_epochs = 100", "num_epochs = 3"),
                Edit("train.py", "loss.data[0]", "loss.item()")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6000"},
         style="an MLP autoencoder 784-128-64-12-3 and back, Tanh output, MSELoss, Adam 1e-3 weight decay 1e-5 "
               "(CUDA calls removed, .item())",
         variants=[Variant("healthy")]),
    Case("lx_vae", LX, {"train.py": "08-AutoEncoder/Variational_autoencoder.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", "num_epochs = 100", "num_epochs = 3")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6000"},
         style="a VAE 784-400-20, sigmoid decoder, summed MSE + KL, Adam 1e-3",
         variants=[
             Variant("as_written", expect=("runtime_error",),
                     what="as published: `loss.data[0]` on a 0-dim tensor raises IndexError on torch >= 0.5"),
             Variant("fixed", [Edit("train.py", "loss.data[0]", "loss.item()")], what="healthy: .item()"),
         ]),
    Case("lx_gan", LX, {"train.py": "09-Generative Adversarial network/simple_Gan.py"}, "train.py", [],
         edits=[PGTV, Edit("train.py", ".cuda()", ""), Edit("train.py", "num_epoch = 100", "num_epoch = 2")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "6000"},
         style="an MLP GAN (LeakyReLU discriminator with a sigmoid, Tanh generator), BCELoss, two Adams 3e-4 "
               "(CUDA calls removed)",
         variants=[
             Variant("as_written", expect=("runtime_error", "shape_mismatch"),
                     what="as published: Normalize with three channels' statistics on one-channel images fails in "
                          "torchvision's in-place normalize"),
             Variant("fixed", [Edit("train.py", "transforms.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))",
                                    "transforms.Normalize(mean=(0.5,), std=(0.5,))"),
                               Edit("train.py", "d_loss.data[0], g_loss.data[0]", "d_loss.item(), g_loss.item()"),
                               Edit("train.py", "Variable(torch.ones(num_img))", "Variable(torch.ones(num_img, 1))"),
                               Edit("train.py", "Variable(torch.zeros(num_img))", "Variable(torch.zeros(num_img, 1))")],
                     what="healthy: one channel's statistics, labels shaped like the discriminator's (N, 1) output "
                          "(BCELoss refuses a (N,) target since torch 0.4), .item()"),
         ]),
    Case("hf_char_gpt", HFCHAR, {"train_char_gpt.py": "train_char_gpt.py"}, "train_char_gpt.py",
         ["--block_size", "64", "--bs", "32", "--epochs", "1", "--log_steps", "20", "--out_dir", "out"],
         edits=[
             Edit("train_char_gpt.py", "from datasets import load_dataset, Dataset as HFDataset\n", ""),
             Edit("train_char_gpt.py", 'raw = load_dataset("tiny_shakespeare", split="train", trust_remote_code=True)\n'
                  '    full_text = "\\n".join(raw["text"])', 'full_text = open("input.txt").read()'),
             Edit("train_char_gpt.py", "n_embd=384,\n        n_layer=6,\n        n_head=6,",
                  "n_embd=64,\n        n_layer=2,\n        n_head=4,"),
             Edit("train_char_gpt.py", "        overwrite_output_dir=True,\n", ""),
             Edit("train_char_gpt.py", "evaluation_strategy=", "eval_strategy="),
             # transformers 5 refuses bf16 on a machine without a GPU unless use_cpu is set
             Edit("train_char_gpt.py", "bf16=True,", "bf16=True, use_cpu=True,"),
         ],
         prepare="prep_hf_char", env={"WANDB_MODE": "disabled"},
         style="HF Trainer, GPT2LMHeadModel from a tiny GPT2Config, bf16=True (CPU autocast), own AdamW",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "0.06"], expect=("lr_too_high",), what=LR100),
         ]),
    # ------------------------------------------------------------------ added 2026-12-07 (fourth session):
    # eight scripts from seven repositories new to the corpus
    # seungeunrho/minimalRL: single-file RL on CartPole (gym 0.26 API) through the synthgym stand-in
    Case("mrl_dqn", MRL, {"train.py": "dqn.py"}, "train.py", [],
         edits=[Edit("train.py", "import gym\n", "import synthgym as gym\n"),
                # unseeded as published
                Edit("train.py", "#Hyperparameters", "random.seed(0)\ntorch.manual_seed(0)\n#Hyperparameters"),
                Edit("train.py", "s, _ = env.reset()", "s, _ = env.reset(seed=n_epi)"),
                # the script ignores `truncated`: a policy that balances would loop past the 500-step cap forever
                Edit("train.py", "            s_prime, r, done, truncated, info = env.step(a)\n",
                     "            s_prime, r, done, truncated, info = env.step(a)\n            done = done or truncated\n"),
                Edit("train.py", "for n_epi in range(10000):", "for n_epi in range(300):")],
         stand_ins=("synthgym.py",),
         style="DQN: replay buffer (deque), target network synced every 20 episodes, smooth L1 on Q(s,a), "
               "10 Adam steps per episode once the buffer holds 2000 transitions",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "learning_rate = 0.0005", "learning_rate = 0.05")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    Case("mrl_ppo", MRL, {"train.py": "ppo.py"}, "train.py", [],
         edits=[Edit("train.py", "import gym\n", "import synthgym as gym\n"),
                Edit("train.py", "#Hyperparameters", "torch.manual_seed(0)\n#Hyperparameters"),
                Edit("train.py", "s, _ = env.reset()", "s, _ = env.reset(seed=n_epi)"),
                Edit("train.py", "                s_prime, r, done, truncated, info = env.step(a)\n",
                     "                s_prime, r, done, truncated, info = env.step(a)\n                done = done or truncated\n"),
                Edit("train.py", "for n_epi in range(10000):", "for n_epi in range(200):")],
         stand_ins=("synthgym.py",),
         style="PPO (clip 0.1, GAE in a Python loop over numpy), policy and value heads on one trunk, "
               "optimizer owned by the module, 3 epochs per 20-step horizon, batch-1 forwards while acting",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad", [Edit("train.py", "            self.optimizer.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what=NOZG),
         ]),
    # tkipf/pygcn: the reference GCN in plain torch (torch.spmm with a sparse adjacency; scipy builds it)
    Case("pygcn", GCN, {"train.py": "pygcn/train.py", "pygcn/__init__.py": "pygcn/__init__.py",
                        "pygcn/layers.py": "pygcn/layers.py", "pygcn/models.py": "pygcn/models.py",
                        "pygcn/utils.py": "pygcn/utils.py"}, "train.py", [],
         edits=[Edit("pygcn/utils.py", 'path="../data/cora/"', 'path="data/cora/"')],
         prepare="prep_pygcn",
         style="2-layer GCN, full-batch on one graph, log_softmax + nll_loss on 140 labelled nodes, Adam with "
               "weight decay, eval pass (dropout off) after every step; synthetic citation graph in Cora's format",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "1.0"], expect=("lr_too_high",), what=LR100),
         ]),
    # spro/practical-pytorch: the char-RNN name classifier (the classic PyTorch tutorial), names data in the repo
    Case("pp_char_class", PP, {"train.py": "char-rnn-classification/train.py",
                               "data.py": "char-rnn-classification/data.py",
                               "model.py": "char-rnn-classification/model.py",
                               **{f"data/names/{n}.txt": f"data/names/{n}.txt" for n in (
                                   "Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek",
                                   "Irish", "Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian",
                                   "Scottish", "Spanish", "Vietnamese")}},
         "train.py", [],
         edits=[Edit("data.py", "'../data/names/*.txt'", "'data/names/*.txt'"),
                Edit("train.py", "loss.data[0]", "loss.item()"),  # IndexError on a 0-dim tensor since torch 0.5
                Edit("train.py", "n_hidden = 128", "random.seed(0)\ntorch.manual_seed(0)\nn_hidden = 128"),
                Edit("train.py", "n_epochs = 100000", "n_epochs = 15000"),
                Edit("train.py", "print_every = 5000", "print_every = 1000"),
                Edit("train.py", "plot_every = 1000", "plot_every = 500")],
         style="RNN cell from two Linear layers (no nonlinearity on the hidden state), one name per step, "
               "one-hot characters fed one at a time, LogSoftmax + NLLLoss, plain SGD 0.005",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", [Edit("train.py", "learning_rate = 0.005", "learning_rate = 0.5")],
                     expect=("lr_too_high",), what=LR100),
         ]),
    # ikostrikov/pytorch-flows: masked autoregressive flow on two moons (sklearn's make_moons, in the repo's loader)
    Case("flows_maf", FLOWS, {"main.py": "main.py", "flows.py": "flows.py", "utils.py": "utils.py",
                              "datasets/__init__.py": "datasets/__init__.py", "datasets/moons.py": "datasets/moons.py",
                              "datasets/util.py": "datasets/util.py"}, "main.py",
         ["--dataset", "MOONS", "--flow", "maf", "--epochs", "2"],
         edits=[Edit("main.py", "from tensorboardX import SummaryWriter", "from torch.utils.tensorboard import SummaryWriter"),
                Edit("utils.py", "torchvision", "synthvision"),
                # the other loaders need h5py and their data files
                Edit("datasets/__init__.py", "from .power import POWER\nfrom .gas import GAS\nfrom .hepmass import HEPMASS\n"
                     "from .miniboone import MINIBOONE\nfrom .bsds300 import BSDS300\n", ""),
                Edit("datasets/__init__.py", "from .moons import MOONS\nfrom .mnist import MNIST", "from .moons import MOONS\n")],
         stand_ins=("synthvision",), env={"MPLBACKEND": "Agg"},
         style="MAF: 5 x (MADE, BatchNormFlow, Reverse), loss -log p(x) with log-det terms, orthogonal init, "
               "Adam 1e-4, BatchNormFlow's momentum toggled around a no_grad pass over the training set",
         variants=[
             Variant("healthy"),
             Variant("lr_x100", extra_args=["--lr", "0.01"], expect=("lr_too_high",), what=LR100,
                     harmless="validation log-likelihood -0.70 vs -1.55 healthy after 2 epochs: Adam at 1e-2 "
                              "trains this small flow faster"),
         ]),
    # znxlwm/pytorch-MNIST-CelebA-GAN-DCGAN: a 2017 DCGAN at 64x64 (CUDA-only, pre-0.4 idioms), made to run today
    Case("znx_dcgan", ZNX, {"train.py": "pytorch_MNIST_DCGAN.py"}, "train.py", [],
         edits=[Edit("train.py", "torchvision", "synthvision"),
                Edit("train.py", "import imageio\n", ""),
                Edit("train.py", "    images.append(imageio.imread(img_name))", "    pass"),
                Edit("train.py", "imageio.mimsave('MNIST_DCGAN_results/generation_animation.gif', images, fps=5)", ""),
                Edit("train.py", ".cuda()", ""),
                Edit("train.py", "transforms.Scale(img_size)", "transforms.Resize(img_size)"),  # Scale was removed
                Edit("train.py", "transforms.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))",
                     "transforms.Normalize(mean=(0.5,), std=(0.5,))"),
                Edit("train.py", ".data[0]", ".item()"),
                Edit("train.py", "fixed_z_ = torch.randn((5 * 5, 100))", "torch.manual_seed(0)\nfixed_z_ = torch.randn((5 * 5, 100))"),
                Edit("train.py", "G = generator(128)\nD = discriminator(128)", "G = generator(16)\nD = discriminator(16)"),
                Edit("train.py", "batch_size = 128", "batch_size = 64"),
                Edit("train.py", "train_epoch = 20", "train_epoch = 2")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "3200", "MPLBACKEND": "Agg"},
         style="DCGAN 64x64 (images resized from 28), BatchNorm in both nets, sigmoid D + BCELoss, "
               "D and G zeroed with Module.zero_grad(), Variable(..., volatile=True) for the samples; CUDA calls, "
               "imageio, .data[0] and Scale removed, width 128 -> 16",
         variants=[
             Variant("healthy"),
             Variant("no_zero_grad_D", [Edit("train.py", "        D.zero_grad()\n", "")],
                     expect=("missing_zero_grad",), what="D.zero_grad() removed"),
         ]),
    # usuyama/pytorch-unet: U-Net on synthetic shapes (simulation.py), the loop from pytorch_unet.ipynb
    Case("unet", UNET, {"pytorch_unet.ipynb": "pytorch_unet.ipynb", "pytorch_unet.py": "pytorch_unet.py",
                        "simulation.py": "simulation.py", "helper.py": "helper.py", "loss.py": "loss.py"}, "train.py", [],
         prepare="prep_unet_notebook",
         edits=[Edit("train.py", "import helper\nimport simulation\n",
                     "import helper\nimport simulation\nimport random, torch\nrandom.seed(0)\ntorch.manual_seed(0)\n"),
                Edit("train.py", "from torchvision import transforms, datasets, models", "from synthvision import transforms, datasets"),
                Edit("train.py", "import torchvision.utils", "import synthvision.utils"),
                Edit("train.py", "from torchsummary import summary\n", ""),
                Edit("train.py", "summary(model, input_size=(3, 224, 224))", ""),
                # torchvision's ToTensor takes the HxWx3 uint8 numpy image; synthvision's takes a tensor
                Edit("train.py", "    transforms.ToTensor(),\n])",
                     "    transforms.Lambda(lambda a: torch.from_numpy(a)), transforms.ToTensor(),\n])"),
                Edit("train.py", "generate_random_data(192, 192, count=count)", "generate_random_data(64, 64, count=count)"),
                Edit("train.py", "train_set = SimDataset(2000,", "train_set = SimDataset(600,"),
                Edit("train.py", "val_set = SimDataset(200,", "val_set = SimDataset(50,"),
                Edit("train.py", "num_epochs=40)", "num_epochs=3)"),
                *[Edit("pytorch_unet.py", f"double_conv({a})", f"double_conv({b})") for a, b in (
                    ("3, 64", "3, 16"), ("64, 128", "16, 32"), ("128, 256", "32, 64"), ("256, 512", "64, 128"),
                    ("256 + 512, 256", "64 + 128, 64"), ("128 + 256, 128", "32 + 64, 32"), ("128 + 64, 64", "32 + 16, 16"))],
                Edit("pytorch_unet.py", "nn.Conv2d(64, n_class, 1)", "nn.Conv2d(16, n_class, 1)")],
         stand_ins=("synthvision",), env={"MPLBACKEND": "Agg"},
         style="U-Net (bilinear upsampling, skip concatenations), 6 binary masks per image, BCE-with-logits + "
               "dice, Adam 1e-4, StepLR stepped before the optimizer, best-on-val weights reloaded; notebook code "
               "cells run as one script, 192 -> 64 px, widths / 4",
         variants=[
             Variant("healthy"),
             Variant("raw_pixels", [Edit("train.py", "transforms.Lambda(lambda a: torch.from_numpy(a)), transforms.ToTensor(),",
                                         "transforms.Lambda(lambda a: torch.from_numpy(a).permute(2, 0, 1).float()),")],
                     expect=("input_not_normalized",), what="pixels fed as 0..255 floats (no ToTensor scaling)"),
         ]),
    # Joyful-Buffalo/simplest-knowledge-distillation: teacher, two students, Hinton KD, seven trainings in a row
    Case("kd", KD, {"train.py": "vanilla_kd_run.py", "simplest_models/students.py": "simplest_models/students.py",
                    "simplest_models/teachers.py": "simplest_models/teachers.py",
                    "utils/dataset/mnist.py": "utils/dataset/mnist.py", "utils/reproducible.py": "utils/reproducible.py"},
         "train.py", [],
         edits=[Edit("utils/dataset/mnist.py", "torchvision", "synthvision"),
                Edit("utils/dataset/mnist.py", "num_workers=8,\n        generator=g,\n        persistent_workers=True",
                     "num_workers=0,\n        generator=g"),
                # 4 steps an epoch at 1024 on 4096 images: the teacher stays at 23% after 3 epochs
                Edit("utils/dataset/mnist.py", "batch_size=1024", "batch_size=128"),
                Edit("train.py", "for epoch in range(10):", "for epoch in range(3):")],
         stand_ins=("synthvision",), env={"SYNTH_TRAIN": "4096", "SYNTH_TEST": "1024"},
         style="seven trainings in one process: a CNN teacher, a CNN and an MLP student alone, then each "
               "distilled (KLDivLoss batchmean on T=2 softmaxes x T^2 + CE) from scratch and from its own weights; "
               "teacher in eval under no_grad; Adam 1e-2, batch 1024 -> 128, deterministic algorithms on",
         variants=[
             Variant("healthy"),
             Variant("double_softmax", [Edit("train.py", "hard_loss_value = hard_loss(outputs, labels)",
                                             "hard_loss_value = hard_loss(F.softmax(outputs, dim=1), labels)")],
                     expect=("double_softmax",), what="softmax before the distillation's CrossEntropyLoss (hard-label term)",
                     harmless="every model ends at 100% test accuracy, as in the healthy twin (the synthetic digits are "
                              "easy and the soft KD term carries the students)"),
         ]),
]

# ----------------------------------------------------------------------------- setup / run / table


def snapshot(rev: str) -> None:
    """Extracts src/ of modeldebug at `rev` into SNAPSHOT; runs import modeldebug from there."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True,
                            text=True).stdout.strip()
    if SNAPSHOT.exists():
        shutil.rmtree(SNAPSHOT)
    SNAPSHOT.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(SNAPSHOT)], input=archive, check=True)
    (SNAPSHOT / "COMMIT").write_text(commit + "\n")
    print(f"modeldebug {commit} in {SNAPSHOT}/src")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    if (SNAPSHOT / "src").is_dir():
        env["PYTHONPATH"] = str(SNAPSHOT / "src")
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"})
    env.update(extra)
    return env


def _apply(d: Path, edits: list[Edit]) -> None:
    for e in edits:
        p = d / e.file
        text = p.read_text(encoding="utf8")
        if e.old not in text:
            raise SystemExit(f"edit does not apply: {e.old!r} not in {p}")
        p.write_text(text.replace(e.old, e.new), encoding="utf8")


def setup(case: Case, variants: list[Variant]) -> None:
    for v in variants:
        d = ROOT / case.name / v.name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for dest, src in case.files.items():
            (d / dest).parent.mkdir(parents=True, exist_ok=True)
            (d / dest).write_bytes(_git_show(case.repo, src))
        for s in case.stand_ins:
            if (HERE / s).is_dir():
                shutil.copytree(HERE / s, d / s, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(HERE / s, d / s)
        if case.prepare:
            PREPARE[case.prepare](d)
        _apply(d, case.edits + v.edits)
        args = (case.args if v.args is None else v.args) + v.extra_args
        (d / "args.json").write_text(json.dumps({"script": case.script, "args": args, "env": case.env,
                                                 "expect": v.expect, "what": v.what}))
        print(f"set up {d}")


def _timed(cmd: list[str], d: Path, env: dict[str, str], log: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open(d / log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=d, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=TIMEOUT_S,
                                check=False).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return time.perf_counter() - t0, rc


def run(case: Case, variants: list[Variant]) -> None:
    for v in variants:
        d = ROOT / case.name / v.name
        spec = json.loads((d / "args.json").read_text())
        env = _env(spec["env"])
        for stale in ("out.json", "run.db", "run.db-wal", "run.db-shm"):
            (d / stale).unlink(missing_ok=True)
        if WATCHED_ONLY:  # a check of the findings alone: no plain run, no timing ratio
            plain_s, plain_rc = float("nan"), None
        else:
            if case.warmup:
                _timed([PYTHON, spec["script"], *spec["args"]], d, env, "warmup.log")
            plain_s, plain_rc = _timed([PYTHON, spec["script"], *spec["args"]], d, env, "plain.log")
        watched_s, watched_rc = _timed([PYTHON, "-m", "modeldebug", "run", "--json", "out.json", "--db", "run.db",
                                        "-q", "--", spec["script"], *spec["args"]], d, env, "watched.log")
        (d / "timing.json").write_text(json.dumps({"plain_s": plain_s, "plain_rc": plain_rc,
                                                   "watched_s": watched_s, "watched_rc": watched_rc}))
        print(f"{case.name}/{v.name}: plain {plain_s:.1f}s rc={plain_rc}, watched {watched_s:.1f}s "
              f"rc={watched_rc}, ratio {watched_s / plain_s:.2f}", flush=True)


def _verdict(findings: list[dict], expect: list[str]) -> str:
    if not expect:
        loud = [f for f in findings if f["severity"] in ("medium", "high")]
        return "clean" if not loud else "FALSE ALARM: " + ", ".join(f"{f['code']} {f['kind']}" for f in loud)
    kinds = [f["kind"] for f in findings]
    if kinds and kinds[0] in expect:
        return "top"
    return "found" if any(k in expect for k in kinds) else "missed"


def table(names: list[str]) -> None:
    print("| script | variant | top findings (code kind severity) | verdict | overhead |")
    print("|---|---|---|---|---|")
    healthy = alarms = broken = top = found = 0
    for case in CASES:
        if names and case.name not in names:
            continue
        for v in case.variants:
            d = ROOT / case.name / v.name
            if not (d / "timing.json").exists():
                continue
            t = json.loads((d / "timing.json").read_text())
            try:
                rep = json.loads((d / "out.json").read_text())
                findings = rep["findings"]
            except (OSError, ValueError, KeyError):
                findings, rep = [], None
            top3 = "; ".join(f"{f['code']} {f['kind']} {f['severity']}" for f in findings[:3]) or "none"
            if v.expect is None:
                verdict = "not scored"
            elif v.harmless and rep is not None and _verdict(findings, list(v.expect)) == "missed":
                verdict = f"not scored (harmless here: {v.harmless})"
            elif rep is None:
                verdict = f"no report (rc={t['watched_rc']})"
            else:
                verdict = _verdict(findings, list(v.expect))
            if verdict.startswith("not scored"):
                pass
            elif not v.expect:
                healthy += 1
                alarms += verdict.startswith("FALSE")
            else:
                broken += 1
                top += verdict == "top"
                found += verdict == "found"
            ratio = t["watched_s"] / t["plain_s"]
            rc = "" if t["watched_rc"] == 0 else f" (rc {t['watched_rc']})"
            print(f"| {case.name} | {v.name} | {top3} | {verdict}{rc} | {ratio:.2f}x "
                  f"({t['plain_s']:.0f}s) |")
    print(f"\nhealthy runs: {healthy}, with a medium/high false alarm: {alarms}; "
          f"broken variants scored: {broken}, right root cause first: {top}, present but not first: {found}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["snapshot", "setup", "run", "table", "sha"])
    p.add_argument("names", nargs="*", help="case names (default: all)")
    p.add_argument("--variant", action="append", help="only these variants")
    a = p.parse_args(argv)
    if a.command == "snapshot":
        snapshot(a.names[0] if a.names else "HEAD")
        return 0
    if a.command == "sha":
        for case in CASES:
            if case.repo == HFCHAR:
                print(hashlib.sha256(_git_show(HFCHAR, "train_char_gpt.py")).hexdigest())
        return 0
    if a.command == "table":
        table(a.names)
        return 0
    unknown = set(a.names) - {c.name for c in CASES}
    if unknown:
        print(f"unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for case in CASES:
        if a.names and case.name not in a.names:
            continue
        variants = [v for v in case.variants if not a.variant or v.name in a.variant]
        (setup if a.command == "setup" else run)(case, variants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
