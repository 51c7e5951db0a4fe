"""Behaviour probes on real models the tests make: a character-level LM trained here, and canned models."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from charmodel import trained, untrained
from modeldebug.behaviour import BehaviourConfig, check_weights, load_facts, probe
from modeldebug.behaviour.stats import newcombe_diff, normalized_edit_distance, wilson

FACTS, PAIRS = load_facts()
ANSWER = {f.prompt: f.answers[0] for f in FACTS}


def codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in result.findings]


@pytest.fixture(scope="module")
def charmodel():  # type: ignore[no-untyped-def]
    return trained()


# -- knowledge and weights: the trained model knows facts, an untrained copy "knows nothing" ---------------
def test_trained_char_model_passes_knowledge_and_shows_its_gap(charmodel) -> None:
    r = probe(charmodel, probes=["weights", "knowledge"])
    caps = r.results["knowledge"].summary["capabilities"]
    for cap in ("arithmetic", "capitals", "common facts"):
        assert caps[cap]["lenient"]["rate"] >= 0.8, (cap, caps[cap])
        assert caps[cap]["strict"]["rate"] >= 0.8, (cap, caps[cap])
    assert caps["units"]["lenient"]["rate"] <= 0.25  # never trained on units
    assert "BEH020" not in codes(r) and "BEH022" not in codes(r)
    gap = [f for f in r.findings if f.code == "BEH021"]
    assert [f.evidence["capability"] for f in gap] == ["units"]
    assert r.weights is not None and r.weights.verdict is None
    text = r.summary_text()
    assert "strict" in text and "lenient" in text and "capitals" in text


def test_untrained_copy_knows_nothing_and_the_weights_say_why() -> None:
    r = probe(untrained(), probes=["weights", "knowledge"])
    assert codes(r)[:3] == ["BEH022", "BEH005", "BEH020"]  # root cause first, then what it explains
    cause, gibberish, symptom = r.findings[:3]
    assert symptom.kind == "knows_nothing" and symptom.severity == "high"
    assert gibberish.kind == "degenerate_output" and gibberish.evidence["explained_by"] == "BEH022"
    assert cause.evidence["verdict"] == "random_init"
    assert [s["kind"] for s in cause.evidence["symptoms"]] == ["knows_nothing", "degenerate_output"]
    assert "fc1.weight" in cause.evidence["init_like"]
    assert "knows nothing" in r.report().to_text()


@pytest.mark.parametrize(("fault", "verdict"), [("zero", "all_zero"), ("nan", "nonfinite"),
                                                ("zero_output_layer", "zero_matrices")])
def test_broken_weights_are_named(charmodel, fault: str, verdict: str) -> None:
    broken = copy.deepcopy(charmodel)
    with torch.no_grad():
        if fault == "zero_output_layer":  # a partial load: one matrix left at zero
            broken.model.fc2.weight.zero_()
        else:
            for p in broken.model.parameters():
                p.zero_() if fault == "zero" else p.fill_(float("nan"))
    r = probe(broken, probes=["weights", "knowledge"])
    assert r.findings[0].code == "BEH022" and r.findings[0].evidence["verdict"] == verdict
    assert r.findings[0].severity == "high" and "BEH020" in codes(r)


def test_hugging_face_style_init_is_recognised_and_trained_weights_are_not() -> None:
    fresh = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256))
    torch.manual_seed(0)
    for m in fresh:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    assert check_weights(fresh).verdict == "random_init"
    heavy = copy.deepcopy(fresh)
    with torch.no_grad():  # trained weights have heavy tails: a Student-t draw, not a normal one
        for m in heavy:
            m.weight.copy_(torch.distributions.StudentT(3.0).sample(m.weight.shape) * 0.02)
    assert check_weights(heavy).verdict is None


def test_weight_check_reads_but_never_changes_the_model(charmodel) -> None:
    m = charmodel.model
    before = {k: v.clone() for k, v in m.state_dict().items()}
    check_weights(m)
    assert not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# -- determinism ----------------------------------------------------------------------------------------
def test_dropout_left_on_is_found_as_nondeterminism(charmodel) -> None:
    noisy = copy.deepcopy(charmodel)
    noisy.model.drop.p = 0.5
    noisy.model.train()  # the classic bug: generating in training mode
    r = probe(noisy, probes=["weights", "determinism"])
    f = next(f for f in r.findings if f.code == "BEH010")
    assert f.severity == "high"
    assert f.evidence["active_dropout"] == ["drop"]
    assert "model.eval()" in [rec.implementation for rec in f.recommendations]
    assert f.evidence["exact_match_rate"] < 1.0
    assert noisy.model.training  # we reported it; we did not switch it off


def test_dropout_hidden_by_reseeding_is_still_reported(charmodel) -> None:
    noisy = copy.deepcopy(charmodel)
    noisy.model.drop.p = 0.5
    noisy.model.train()

    def reseeding(prompt: str, **options: object) -> str:  # serving code that reseeds torch on every call
        torch.manual_seed(0)
        return noisy.generate(prompt, **options)  # type: ignore[arg-type]

    r = probe(reseeding, probes=["weights", "determinism"], weights=noisy.model)
    assert codes(r) == ["BEH023"] and r.findings[0].kind == "train_mode_misuse"


def test_eval_mode_twin_is_deterministic(charmodel) -> None:
    r = probe(charmodel, probes=["weights", "determinism"])
    assert "BEH010" not in codes(r) and "BEH023" not in codes(r)
    s = r.results["determinism"].summary
    assert s["exact_match_rate"] == 1.0
    assert set(s["classes"]) <= {"deterministic_right", "deterministic_wrong"}


def test_sampler_that_ignores_temperature_is_random_and_the_classes_say_so() -> None:
    rng = random.Random(0)

    def sampler(prompt: str, *, temperature: float | None = None, seed: int | None = None) -> str:
        right = ANSWER.get(prompt, "?")
        return rng.choice([right, right, "I think 3", "maybe Lyon"])  # ignores both options

    r = probe(sampler, probes=["determinism"])
    f = next(f for f in r.findings if f.code == "BEH010")
    assert f.severity == "high"  # it accepted temperature and seed and still varied
    classes = r.results["determinism"].summary["classes"]
    assert set(classes) <= {"random_right", "random_wrong", "deterministic_right", "deterministic_wrong"}
    assert classes.get("random_right", 0) + classes.get("random_wrong", 0) >= 4


# -- runs at all ----------------------------------------------------------------------------------------
def test_model_that_raises_is_reported_and_the_rest_skipped() -> None:
    def broken(prompt: str) -> str:
        raise RuntimeError("CUDA error: device-side assert triggered")

    r = probe(broken)
    assert codes(r) == ["BEH001"]
    f = r.findings[0]
    assert f.severity == "high" and "RuntimeError" in f.title and "device-side assert" in f.description
    assert r.results["runs"].summary["skipped"] == ["determinism", "knowledge", "robustness", "safety"]


def test_non_string_output_counts_as_a_failure() -> None:
    r = probe(lambda prompt: {"text": prompt}, probes=["runs"])
    assert "ModelOutputError" in r.findings[0].title


@pytest.mark.parametrize(("model", "code"), [(lambda p: "  ", "BEH002"), (lambda p: p, "BEH003"),
                                             (lambda p: p + "\n", "BEH003")])
def test_empty_and_echo(model, code: str) -> None:  # type: ignore[no-untyped-def]
    r = probe(model, probes=["runs"])
    assert codes(r) == [code] and r.findings[0].severity == "high"


def test_slow_model_measured_through_the_timer() -> None:
    clock = [0.0]

    def slow(prompt: str) -> str:
        clock[0] += 12.0  # each answer takes 12 s of (fake) time
        return f"You asked: {prompt}"

    r = probe(slow, probes=["runs"], config=BehaviourConfig(timer=lambda: clock[0]))
    assert codes(r) == ["BEH004"] and "p95 latency 12.0s" in r.findings[0].title
    fast = probe(lambda p: f"You asked: {p}", probes=["runs"], config=BehaviourConfig(timer=lambda: clock[0]))
    assert codes(fast) == []


def test_unknown_probe_is_bad_input() -> None:
    from modeldebug.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown probe.*'knowlege'"):
        probe(lambda p: "x", probes=["knowlege"])


# -- statistics -----------------------------------------------------------------------------------------
def test_wilson_and_newcombe_match_published_values() -> None:
    lo, hi = wilson(2, 3)
    assert (round(lo, 4), round(hi, 4)) == (0.2077, 0.9385)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(10, 10)[1] == 1.0
    d, lo, hi = newcombe_diff(48, 80, 56, 70)  # Newcombe (1998), method 10 example
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (0.2, 0.0524, 0.3339)
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
