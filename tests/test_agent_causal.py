"""The causality probe on real tiny sequence models: a GPT without its mask leaks, the same GPT with it does not."""

from __future__ import annotations

import torch
from torch import nn

import agent_models as am
from modeldebug.agent import DebuggingRequest
from modeldebug.agent.causality import causality_probe, claimed_causal
from modeldebug.agent.probes import batch_mixing_probe
from modeldebug.agent.request import Workload


def work(model: nn.Module, batch=None, **kw) -> Workload:  # type: ignore[no-untyped-def]
    return Workload(DebuggingRequest(model=model, batch=batch or am.token_batch(), loss_fn=kw.pop("loss_fn", am.next_token_loss),
                                     **kw))


class PeeksOneAhead(am.TinyGPT):
    """The mask is off by one: position t may attend to t + 1."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tokens(idx) + self.positions(torch.arange(t))
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=2)
        return self.head(self.blocks(h, mask=mask))


class Forecaster(nn.Module):
    """A float sequence model: a causal (left-padded) or centred convolution over time."""

    def __init__(self, *, causal: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.causal = causal
        self.conv = nn.Conv1d(1, 8, 3)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, time)
        pad = (2, 0) if self.causal else (1, 1)
        h = torch.relu(self.conv(nn.functional.pad(x[:, None], pad)))
        return self.head(h.transpose(1, 2))[..., 0]


def test_a_gpt_without_its_mask_leaks_from_the_first_position_and_the_attention_is_named() -> None:
    result = causality_probe(work(am.TinyGPT(causal=False)))
    assert result.verdict == "fail"
    (f,) = result.findings
    assert (f.code, f.kind, f.severity) == ("PRB003", "causality_leak", "high")
    assert result.data["first_leaking_position"] == 0 and result.data["sees_positions"] == list(range(1, 12))
    assert f.location == "blocks.layers.0.self_attn" and result.data["through"] == "tokens"
    assert "next-token" in result.data["why_causal"] and "is_causal=True" in f.recommendations[0].implementation


def test_the_same_gpt_with_its_mask_passes() -> None:
    result = causality_probe(work(am.TinyGPT(causal=True)))
    assert result.verdict == "pass" and not result.findings
    assert result.data["positions_checked"] == [0, 1, 6, 10]


def test_an_off_by_one_mask_is_caught_with_the_positions_it_sees() -> None:
    result = causality_probe(work(PeeksOneAhead()))
    assert result.verdict == "fail" and result.data["first_leaking_position"] == 0
    assert result.data["sees_positions"] == [1, 2]  # one position further per layer: two layers
    assert result.findings[0].location == "blocks.layers.0.self_attn"


def test_float_sequences_are_probed_directly() -> None:
    g = torch.Generator().manual_seed(0)
    series = torch.randn(8, 17, generator=g).cumsum(1)
    batch = (series[:, :-1], series[:, 1:])  # forecast the next value: targets are the inputs shifted
    leaky = causality_probe(work(Forecaster(causal=False), batch, loss_fn=nn.MSELoss()))
    assert leaky.verdict == "fail" and leaky.data["through"] == "the input"
    assert leaky.data["first_leaking_position"] == 0 and leaky.data["sees_positions"] == [1]
    assert causality_probe(work(Forecaster(causal=True), batch, loss_fn=nn.MSELoss())).verdict == "pass"


def test_no_claim_without_evidence_that_the_model_is_autoregressive() -> None:
    x, _ = am.token_batch()
    tags = torch.randint(0, 16, x.shape, generator=torch.Generator().manual_seed(1))  # a tagger: bidirectional by design
    quiet = causality_probe(work(am.TinyGPT(causal=False), (x, tags)))
    assert quiet.verdict == "skipped" and "not known to be autoregressive" in quiet.summary and not quiet.findings
    said = work(am.TinyGPT(causal=False), (x, tags), issue="my causal language model trains too well")
    assert claimed_causal(said) == "the request says 'causal'"
    assert causality_probe(said).verdict == "fail"


def test_hf_style_labels_equal_to_input_ids_count_as_causal() -> None:
    class HFStyle(am.TinyGPT):
        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
            logits = super().forward(input_ids)
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
            return {"logits": logits, "loss": loss}

    x, _ = am.token_batch()
    w = Workload(DebuggingRequest(model=HFStyle(causal=False), batch=({"input_ids": x, "labels": x}, None)))
    assert "labels are its input_ids" in (claimed_causal(w) or "")
    assert causality_probe(w).verdict == "fail"


def test_an_output_without_the_time_axis_is_skipped() -> None:
    class Pooled(am.TinyGPT):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return super().forward(idx).mean(1)

    x, y = am.token_batch()
    result = causality_probe(work(Pooled(causal=False), (x, y), loss_fn=nn.CrossEntropyLoss(), issue="language model"))
    assert result.verdict == "skipped" and "no time axis aligned" in result.summary


def test_batch_mixing_now_probes_token_inputs_through_the_embedding() -> None:
    class MixesBatch(am.TinyGPT):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            out = super().forward(idx)
            return out + out.mean(0, keepdim=True)  # every sample sees the batch's mean

    assert batch_mixing_probe(work(am.TinyGPT())).verdict == "pass"
    bad = batch_mixing_probe(work(MixesBatch()))
    assert bad.verdict == "fail" and bad.findings[0].kind == "batch_mixing" and bad.data["through"] == "tokens"
