"""A next-token model that can read the token it must predict (DAT004's future-leak path).

A transformer language model trained on ids ``x`` with targets ``x`` shifted by one, and no causal
mask: the output at position t attends to position t + 1, its own target, and learns to copy it.
The probe (on a private copy, at the first step) takes the gradient of one position's output at
the embedding of every position. Twins: the same model with a causal mask, and a sequence
classifier (its target is not the ids shifted), which the check does not apply to.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import found
from torch import nn

import modeldebug as md

V, T = 12, 16


class _LM(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.tok, self.pos = nn.Embedding(V, 32), nn.Parameter(torch.randn(T, 32) * 0.02)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(32, V)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos[: ids.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1]) if self.causal else None
        return self.head(self.encoder(h, mask=mask, is_causal=self.causal))


def _train(causal: bool, objective: str = "next_token"):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = _LM(causal)
    data = torch.randint(0, V, (64, T + 1))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(12):
            batch = data[(step * 16) % 64:(step * 16) % 64 + 16]
            x = batch[:, :T]
            logits = model(x)
            if objective == "next_token":
                loss = F.cross_entropy(logits.reshape(-1, V), batch[:, 1:].reshape(-1))
            elif objective == "shifted_inside":  # labels = ids, the loss shifts them (GPT2LMHeadModel's way)
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1))
            elif objective == "shifted_twice":  # labels = ids[1:] from the data, then shifted again by the loss
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), batch[:, 2:].reshape(-1))
            else:  # a sequence classifier: the class of the first token, read at the last position
                loss = F.cross_entropy(logits[:, -1], x[:, 0])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s


def test_a_language_model_without_a_causal_mask_is_said_to_see_its_targets() -> None:
    s = _train(causal=False)
    f = found(s.report(), "data_leakage")
    assert f is not None and f.severity == "high" and f.code == "DAT004"
    assert f.evidence["first_future_seen"] == f.evidence["position"] + 1
    assert "is_causal=True" in f.recommendations[0].implementation


@pytest.mark.parametrize(("causal", "objective"), [(True, "next_token"), (False, "classify")],
                         ids=["causal-mask", "not-a-next-token-objective"])
def test_a_causal_model_or_another_objective_is_left_alone(causal: bool, objective: str) -> None:
    s = _train(causal, objective)
    assert found(s.report(), "data_leakage") is None
    probe = s.record.events("future_leak_probe")
    if objective == "next_token":
        assert probe and probe[0].data["future_positions_seen"] == 0 and probe[0].data["own_grad"] > 0
    else:
        assert not probe


class _FFTConvLM(nn.Module):
    """A causal long convolution computed by FFT (S4/H3/Hyena style): output t sums inputs <= t, but
    the float32 transforms leave ~1e-8 of gradient on the later positions."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.kernel, self.out = nn.Embedding(V, 16), nn.Parameter(torch.randn(16, T) * 0.1), nn.Linear(16, V)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        u = self.emb(ids).transpose(1, 2)
        n = 2 * T
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(self.kernel, n=n), n=n)[..., :T]
        return self.out(F.gelu(y.transpose(1, 2)))


def test_a_causal_model_whose_rounding_reaches_later_positions_is_not_a_leak() -> None:
    """(review) An exact-zero test read the FFT's rounding (1e-8 against 0.16) as a leak."""
    torch.manual_seed(0)
    model = _FFTConvLM()
    data = torch.randint(0, V, (32, T + 1))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for i in range(0, 32, 16):
            loss = F.cross_entropy(model(data[i:i + 16, :T]).reshape(-1, V), data[i:i + 16, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert found(s.report(), "data_leakage") is None
    (probe,) = s.record.events("future_leak_probe")
    assert 0 < probe.data["max_future_grad"] < 1e-4 * probe.data["own_grad"]


class _TranslateBackwards(nn.Module):
    """An encoder-decoder called (target ids, source ids), source as long as the target: the source is
    embedded first and read whole by cross-attention (as it should be); the decoder is causal."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.net = nn.Transformer(32, 4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64,
                                  dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, V)

    def forward(self, tgt_in: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        memory_in = self.emb(src)
        mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        return self.head(self.net(memory_in, self.emb(tgt_in), tgt_mask=mask, tgt_is_causal=True))


def test_a_decoder_reading_its_whole_source_is_not_a_leak() -> None:
    """(review) The first embedding called on a tensor of the ids' shape was the source's: the
    decoder's legitimate reading of the whole source looked like a leak."""
    torch.manual_seed(0)
    model = _TranslateBackwards()
    src, tgt = torch.randint(0, V, (32, T)), torch.randint(0, V, (32, T + 1))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for i in range(0, 32, 16):
            out = model(tgt[i:i + 16, :T], src[i:i + 16])
            loss = F.cross_entropy(out.reshape(-1, V), tgt[i:i + 16, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert found(s.report(), "data_leakage") is None
    (probe,) = s.record.events("future_leak_probe")
    assert probe.data["future_positions_seen"] == 0 and probe.data["own_grad"] > 0


class _ProbsLM(_LM):
    """The same leaky model, returning probabilities: each output row sums to one."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).softmax(-1)


def test_a_leak_behind_a_softmax_output_is_still_found() -> None:
    """A plain sum of an output row is constant for probabilities, so its gradient would be zero
    everywhere: the probe projects the row on seeded random weights instead."""
    torch.manual_seed(0)
    model = _ProbsLM(causal=False)
    data = torch.randint(0, V, (32, T + 1))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for i in range(0, 32, 16):
            probs = model(data[i:i + 16, :T])
            loss = F.nll_loss(probs.clamp_min(1e-9).log().reshape(-1, V), data[i:i + 16, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(s.report(), "data_leakage")
    assert f is not None and f.evidence["first_future_seen"] == f.evidence["position"] + 1
    assert f.evidence["own_grad"] > 1e-4  # a real gradient, not the rounding left by a row that sums to one


@pytest.mark.parametrize("objective", ["shifted_inside", "shifted_twice"])
def test_labels_shifted_twice_teach_the_model_two_tokens_ahead(objective: str) -> None:
    """blind4's GPT: `labels = seq[1:]` in the data, then `logits[:, :-1]` against `labels[:, 1:]` in the
    model (val next-token accuracy 0.005 against 0.852). Shifting once, inside, is the healthy twin."""
    s = _train(causal=True, objective=objective)
    (probe,) = s.record.events("future_leak_probe")
    f = found(s.report(), "label_issue")
    if objective == "shifted_inside":
        assert probe.data["target_shift"] == 1 and f is None and found(s.report(), "data_leakage") is None
        return
    assert probe.data["target_shift"] == 2
    assert f is not None and f.severity == "high" and "shifted by 2 positions" in f.title


class _Seq2Seq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.tf = nn.Transformer(32, 4, 1, 1, 64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(32, V)

    def forward(self, src: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(dec_in.shape[1])
        return self.out(self.tf(self.emb(src), self.emb(dec_in), tgt_mask=mask, tgt_is_causal=True))


@pytest.mark.parametrize("shifted", [True, False])
def test_a_decoder_fed_its_own_target_reads_the_answer(shifted: bool) -> None:
    """blind4's sequence reversal: the decoder is fed the target itself, not the right-shifted target:
    teacher-forced loss 0.005 in both, greedy exact match 0.000 against 1.000."""
    torch.manual_seed(0)
    model, bos = _Seq2Seq(), 0
    src = torch.randint(1, V, (64, 8))
    tgt = torch.cat([torch.full((64, 1), bos), src.flip(1)], dim=1)  # BOS + the reversed source
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(10):
            b = slice((step * 16) % 64, (step * 16) % 64 + 16)
            dec_in = tgt[b, :-1] if shifted else tgt[b, 1:]
            loss = F.cross_entropy(model(src[b], dec_in).reshape(-1, V), tgt[b, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    (probe,) = s.record.events("future_leak_probe")
    assert probe.data["argument"] == 1  # the decoder's input, not the source
    f = found(s.report(), "data_leakage")
    if shifted:
        assert probe.data["target_shift"] == 1 and f is None
    else:
        assert probe.data["target_shift"] == 0 and probe.data["reads_own_target"] is True
        assert f is not None and f.severity == "high" and "fed the tokens it must predict" in f.title


def test_a_time_first_model_on_sticky_tokens_is_not_fed_its_target() -> None:
    """Review: pytorch/examples' word-model layout ([T, B] ids, target = the next row) on a stream that
    repeats its token 95% of the time. Read batch first, ids and target agree at 95% unshifted by
    chance, and the probe said "fed the tokens it must predict" (high)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, cur, stream = 4000, 0, []
    for jump, tok in zip((torch.rand(n, generator=g) > 0.95).tolist(), torch.randint(0, V, (n,), generator=g).tolist()):
        cur = tok if jump else cur
        stream.append(cur)
    data = torch.tensor(stream).view(16, -1).t().contiguous()  # batchified: [len, 16]
    emb, rnn, head = nn.Embedding(V, 16), nn.LSTM(16, 32), nn.Linear(32, V)

    class _TimeFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.rnn, self.head = emb, rnn, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(self.emb(x))[0])

    model = _TimeFirst()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(20):
            i = step * 10
            x, y = data[i:i + 10], data[i + 1:i + 11]
            loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert found(s.report(), "data_leakage") is None
    assert all(e.data.get("target_shift") != 0 for e in s.record.events("future_leak_probe"))


def test_a_binary_feature_beside_mostly_empty_tags_is_not_a_shifted_target() -> None:
    """Review: a bidirectional tagger reads (token ids, a 0/1 flag per token) and its tags are mostly 0:
    flag and tags agree at ~93% of positions by chance, and the probe took the flag for the ids the
    target follows (DAT004 high, "sees the future")."""
    torch.manual_seed(0)

    class _Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.feat = nn.Embedding(100, 16), nn.Embedding(2, 4)
            self.rnn, self.head = nn.GRU(20, 32, batch_first=True, bidirectional=True), nn.Linear(64, 3)

        def forward(self, ids: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(torch.cat([self.emb(ids), self.feat(flags)], -1))[0])

    model = _Tagger()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(12):
            ids = torch.randint(0, 100, (32, 24))
            flags = (torch.rand(32, 24) < 0.04).long()
            tags = torch.where(ids == 7, 2, torch.where(flags.bool() & (ids % 2 == 0), 1, 0))
            loss = F.cross_entropy(model(ids, flags).reshape(-1, 3), tags.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert found(s.report(), "data_leakage") is None and not s.record.events("future_leak_probe")


class _ClassesSecond(_LM):
    """The same model returning ``[B, V, T]``: the layout `F.cross_entropy(logits, targets)` takes for a sequence."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).transpose(1, 2)


@pytest.mark.parametrize("causal", [True, False])
def test_classes_second_logits_are_read_by_position(causal: bool) -> None:
    """Review (agent): read as ``[B, T, V]``, a ``[B, V, T]`` output mixed classes with positions, and a healthy
    causal model got a HIGH "sees the tokens it must predict"."""
    torch.manual_seed(0)
    model = _ClassesSecond(causal)
    data = torch.randint(0, V, (64, T + 1))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(12):
            batch = data[(step * 16) % 64:(step * 16) % 64 + 16]
            loss = F.cross_entropy(model(batch[:, :T]), batch[:, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(s.report(), "data_leakage")
    (probe,) = s.record.events("future_leak_probe")
    if causal:
        assert f is None and probe.data["future_positions_seen"] == 0 and probe.data["own_grad"] > 0
    else:
        assert f is not None and f.severity == "high" and f.evidence["first_future_seen"] == f.evidence["position"] + 1


def test_a_square_output_whose_time_axis_cannot_be_told_is_not_judged() -> None:
    """Review: logits [B, V, T] with V == T read as [B, T, V] took class p at every position for position p, and
    a healthy causal model got a HIGH "sees the tokens it must predict"."""
    n = 16

    class _CausalConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.conv, self.head = nn.Embedding(n, 16), nn.Conv1d(16, 16, 3), nn.Linear(16, n)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.conv(F.pad(self.tok(ids).transpose(1, 2), (2, 0)))  # padded on the left: causal
            return self.head(h.transpose(1, 2)).transpose(1, 2)  # [B, V, T], V == T

    torch.manual_seed(0)
    model = _CausalConv()
    data = torch.randint(0, n, (64, n + 1))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(12):
            batch = data[(step * 16) % 64:(step * 16) % 64 + 16]
            loss = F.cross_entropy(model(batch[:, :n]), batch[:, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert found(s.report(), "data_leakage") is None
