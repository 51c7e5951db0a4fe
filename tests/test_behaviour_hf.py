"""The Hugging Face adapters on a tiny GPT-2 built here (no hub download) with a character tokenizer."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from modeldebug.behaviour import (BehaviourConfig, HuggingFaceModel, HuggingFacePipeline, as_model,  # noqa: E402
                                  check_weights, probe)
from modeldebug.errors import BadInputError  # noqa: E402


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    vocab = {"<eos>": 0, "<unk>": 1, **{chr(c): i + 2 for i, c in enumerate(range(32, 127))}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0, resid_pdrop=0.3, embd_pdrop=0.3, attn_pdrop=0.3)
    return transformers.GPT2LMHeadModel(config), fast


def test_generate_returns_only_new_text_greedy_and_seeded(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    model.eval()
    m = HuggingFaceModel(model, tok, max_new_tokens=8)
    out = m.generate("What is 2 + 2?")
    assert isinstance(out, str) and not out.startswith("What is") and out == m.generate("What is 2 + 2?")
    state = torch.get_rng_state()
    a = m.generate("Hello", temperature=1.0, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # our seeding did not touch the caller's RNG
    assert a == m.generate("Hello", temperature=1.0, seed=3)
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tok)
    wrapped = as_model(pipe)  # a pipeline is recognised and wrapped: new text only, weights found
    assert wrapped.weights is model
    assert wrapped.generate("What is 2 + 2?", max_tokens=8) == out
    assert HuggingFacePipeline(pipe, max_new_tokens=8).generate("What is 2 + 2?") == out


def test_a_freshly_built_hf_model_in_training_mode_is_diagnosed(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    model.train()  # as built: dropout on, weights from _init_weights
    torch.manual_seed(1)  # the dropout masks come from the global generator; fix them for a repeatable test
    quick = BehaviourConfig(determinism_prompts=3, repeats=5, max_tokens=12)
    r = probe(HuggingFaceModel(model, tok), probes=["weights", "determinism"], config=quick)
    assert [f.code for f in r.findings] == ["BEH022", "BEH005", "BEH010"]  # random weights: gibberish, explained
    assert next(f for f in r.findings if f.code == "BEH005").evidence["explained_by"] == "BEH022"
    assert r.weights is not None and r.weights.verdict == "random_init" and r.weights.training_mode
    nondet = next(f for f in r.findings if f.code == "BEH010")
    assert nondet.evidence["active_dropout"]
    assert model.training  # reported, not changed
    model.eval()
    assert "BEH010" not in [f.code for f in probe(HuggingFaceModel(model, tok), probes=["determinism"],
                                                  config=quick).findings]


def test_a_model_without_its_tokenizer_is_refused(tiny) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match="without its tokenizer"):
        as_model(tiny[0])


def test_hf_weight_check_counts_tied_weights_once(tiny) -> None:  # type: ignore[no-untyped-def]
    model, _ = tiny
    check = check_weights(model)
    names = [t.name for t in check.tensors]
    assert len(names) == len(set(names)) and "lm_head.weight" not in names  # tied to transformer.wte.weight
