"""Bugs found reviewing the agent, each on a real tiny model (seeded, CPU)."""

from __future__ import annotations

import torch
from torch import nn

import modeldebug as md


def _options(**kw):  # type: ignore[no-untyped-def]
    return md.AnalysisOptions(**({"probe_steps": 30, "probe_seeds": 2} | kw))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model: nn.Module, snap: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, snap[k]) for k, v in model.state_dict().items())


class TinyLM(nn.Module):
    """A next-token model returning logits as (batch, classes, time), the layout CrossEntropyLoss takes."""

    def __init__(self, causal: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.causal = causal
        self.emb = nn.Embedding(12, 16)
        self.pos = nn.Parameter(torch.zeros(10, 16))
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.out = nn.Linear(16, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.emb(x) + self.pos[:t]
        mask = nn.Transformer.generate_square_subsequent_mask(t) if self.causal else None
        return self.out(self.enc(h, mask=mask, is_causal=self.causal)).transpose(1, 2)


def _tokens() -> tuple[torch.Tensor, torch.Tensor]:
    seq = torch.randint(0, 12, (16, 11), generator=torch.Generator().manual_seed(4))
    return seq[:, :-1], seq[:, 1:]


def test_causal_lm_with_class_axis_second_is_not_called_leaky() -> None:
    """A causal LM whose logits are (B, C, T) got a HIGH DAT004 "sees the tokens it must predict" (the
    watch's probe reshaped the output as (B, T, C)), and the causality probe skipped it."""
    model = TinyLM(causal=True)
    snap = _snapshot(model)
    r = md.ModelDebuggingAgent().debug_model(md.DebuggingRequest(
        model=model, batch=_tokens(), loss_fn=nn.CrossEntropyLoss(), issue="not converging", options=_options()))
    assert [f.code for f in r.findings if f.severity in ("medium", "high")] == []
    assert r.probes["causality"].verdict == "pass"
    assert r.model_unchanged and _same(model, snap)


def test_lm_without_mask_class_axis_second_is_located() -> None:
    model = TinyLM(causal=False)
    r = md.ModelDebuggingAgent().debug_model(md.DebuggingRequest(
        model=model, batch=_tokens(), loss_fn=nn.CrossEntropyLoss(), issue="not converging", options=_options()))
    assert r.probes["causality"].verdict == "fail"
    top = r.findings[0]
    assert top.kind == "causality_leak" and top.location == "enc.layers.0.self_attn"


def _blobs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 20, generator=g) * 2
    y = torch.randint(0, 4, (64,), generator=g)
    return centers[y] + torch.randn(64, 20, generator=g), y


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))


def test_lower_lr_fix_goes_below_a_tenth_when_that_still_blows_up() -> None:
    """SGD at 50: the only fix tried was 5.0, which blows up too, so "lower the learning rate" was
    reported as NOT helping the lr_too_high finding."""
    model = _mlp()
    r = md.ModelDebuggingAgent().debug_model(md.DebuggingRequest(
        model=model, batch=_blobs(), loss_fn=nn.CrossEntropyLoss(), issue="loss is nan",
        optimizer_factory=lambda p: torch.optim.SGD(p, lr=50.0), options=_options()))
    assert r.findings[0].kind == "lr_too_high"
    lower = [v for v in r.fixes if v.fix == "lower_lr"]
    assert lower and lower[0].helped, [v.to_text() for v in r.fixes]
    assert "5.0e+01 to" in lower[0].description and "to 5.0e+00" not in lower[0].description
    assert r.model_unchanged


def _dead_after_batchnorm() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 3))
    with torch.no_grad():
        model[1].bias.fill_(-10.0)  # every unit of the ReLU after the BatchNorm is dead
    return model


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (32,), generator=g)
    return torch.randn(32, 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float(), y


def test_dead_relu_after_batchnorm_reinit_fix_helps_and_batchnorm_not_called_frozen() -> None:
    """The re-initialisation fix skipped BatchNorm (its bias of -10 stayed: "did NOT help"), and LOP002
    called the BatchNorm, whose gradient is zero behind the dead ReLU, a frozen layer left in train mode."""
    model = _dead_after_batchnorm()
    snap = _snapshot(model)
    r = md.ModelDebuggingAgent().debug_model(md.DebuggingRequest(
        model=model, batch=_images(), loss_fn=nn.CrossEntropyLoss(), issue="not converging", options=_options()))
    assert r.findings[0].kind == "dead_activations"
    reinit = [v for v in r.fixes if v.fix == "reinitialize"]
    assert reinit and reinit[0].helped, [v.to_text() for v in r.fixes]
    assert r.model_unchanged and _same(model, snap) and model[1].bias[0].item() == -10.0
    assert "train_mode_misuse" not in [f.kind for f in r.findings]


def test_frozen_batchnorm_in_train_mode_still_found() -> None:
    """The LOP002 filter keeps the finding for a BatchNorm that is really frozen (requires_grad False)."""
    from modeldebug.agent.core import _not_frozen
    from modeldebug.agent.request import Workload
    from modeldebug.rules.base import Finding

    model = _dead_after_batchnorm()
    work = Workload(md.DebuggingRequest(model=model, batch=_images(), loss_fn=nn.CrossEntropyLoss()))
    f = Finding(code="LOP002", kind="train_mode_misuse", category="model", severity="medium", confidence=0.7,
                title="t", description="d", location="1", evidence={"layers": ["1"], "last_moved_step": {"1": 0}})
    assert _not_frozen(f, work)
    model[1].requires_grad_(False)
    assert not _not_frozen(f, work)
