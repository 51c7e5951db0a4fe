"""Adapters for Hugging Face transformers: a causal LM plus its tokenizer, or a text-generation pipeline.

Both decode only the new tokens (not the prompt), use greedy decoding unless a temperature above 0 is
asked for, and seed sampling inside ``torch.random.fork_rng`` so the caller's random state is left as
it was. The seed is applied only when sampling: seeding (or restoring the generator) around greedy
decoding would replay the same dropout masks of a model left in training mode and hide that bug. Neither calls ``model.eval()``: a
model in training mode is something the determinism probe should see, not something we quietly fix.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any

from ..errors import MissingDependencyError

__all__ = ["HuggingFaceModel", "HuggingFacePipeline"]


def _seeded(device: Any, seed: int | None, sampling: dict[str, Any]) -> Any:
    """A context that seeds sampling and restores the caller's RNG after; nothing when decoding greedily.

    Forking (or seeding) around greedy decoding would replay the same dropout masks on every call and
    hide a model left in training mode, so greedy calls run on the caller's generator as they would.
    """
    import torch

    if seed is None or not sampling["do_sample"]:
        return contextlib.nullcontext()
    cuda = [device.index or 0] if getattr(device, "type", "cpu") == "cuda" else []

    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield

    return ctx()


def _sampling(temperature: float | None) -> dict[str, Any]:
    if temperature is not None and temperature > 0:
        return {"do_sample": True, "temperature": float(temperature)}
    return {"do_sample": False}


class HuggingFaceModel:
    """``generate(prompt)`` for a transformers causal LM and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = 64, name: str | None = None) -> None:
        if importlib.util.find_spec("transformers") is None:  # fail here, with the pip line, not at first use
            raise MissingDependencyError("the Hugging Face adapter", "transformers")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.name = name or getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__

    def generate(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> str:
        """Generate a continuation of `prompt` and return only the new text."""
        import torch

        device = getattr(self.model, "device", torch.device("cpu"))
        enc = self.tokenizer(prompt, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        sampling = _sampling(temperature)
        with _seeded(device, seed, sampling), torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_tokens or self.max_new_tokens,
                                      pad_token_id=pad, **sampling)
        new = out[0, enc["input_ids"].shape[1]:]
        return str(self.tokenizer.decode(new, skip_special_tokens=True))


class HuggingFacePipeline:
    """``generate(prompt)`` for a transformers ``text-generation`` pipeline."""

    def __init__(self, pipe: Any, *, max_new_tokens: int = 64, name: str | None = None) -> None:
        self.pipe = pipe
        self.model = getattr(pipe, "model", None)
        self.max_new_tokens = max_new_tokens
        self.name = name or getattr(getattr(self.model, "config", None), "name_or_path", None) or "pipeline"

    def generate(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> str:
        """Run the pipeline on `prompt` and return the generated text without the prompt."""
        sampling = _sampling(temperature)
        with _seeded(getattr(self.pipe, "device", None), seed, sampling):
            out = self.pipe(prompt, max_new_tokens=max_tokens or self.max_new_tokens, return_full_text=False,
                            **sampling)
        first = out[0] if isinstance(out, list) and out else out
        if isinstance(first, list) and first:  # a batch of one prompt with several sequences
            first = first[0]
        if isinstance(first, dict) and isinstance(first.get("generated_text"), str):
            return first["generated_text"]
        raise TypeError(f"the pipeline returned {type(out).__name__} without 'generated_text'; "
                        "is it a text-generation pipeline?")
