"""ONNXConfig: the thresholds and run settings of the ONNX checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .tolerance import DTYPE_TOLERANCES

__all__ = ["ONNXConfig"]


class ONNXConfig(BaseModel):
    """Settings for `check`, `inspect`, `profile` and `compare`; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    atol: float | None = Field(None, ge=0, description="compare: absolute tolerance for every dtype; an element "
                               "fails only if BOTH |a-b| > atol and |a-b| > rtol*|reference|. None: the default "
                               "of the dtype the value was computed in (dtype_tolerances).")
    rtol: float | None = Field(None, ge=0, description="compare: relative tolerance (see atol).")
    dtype_tolerances: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DTYPE_TOLERANCES),
        description="compare: default (atol, rtol) per floating-point type; the lowest precision among a "
                    "value, its reference and every float it depends on decides.")
    seed: int = Field(0, description="seed of the random inputs made when none are given.")
    batch_sizes: tuple[int, int] = Field((2, 3), description="compare: the two batch sizes tried when the "
                                         "first axis of the inputs is dynamic.")
    dim_default: int = Field(4, description="size given to other symbolic dimensions in made-up inputs.")
    op_level: bool = Field(True, description="compare: when a value disagrees, re-export the PyTorch model the way "
                           "the exporter does to match every op's value (costs one export); False matches module "
                           "outputs only.")
    max_reruns: int = Field(200, description="compare: at most this many node groups are re-run alone.")
    reference_max_nodes: int = Field(5000, description="compare: onnx.reference (pure numpy, slow) is "
                                     "only asked on graphs up to this many nodes.")
    large_constant_bytes: int = Field(1 << 20, description="check: Constant nodes above this size (ONX008).")
    max_inline_bytes: int = Field(2**31 - 1, description="check: protobuf limit for inline tensor data (ONX009).")
    max_feed_bytes: int = Field(1 << 30, ge=1, description="profile, compare, check: made-up inputs that would "
                                "need more memory than this are refused before anything is allocated.")
    warmup: int = Field(2, ge=0, description="profile: runs dropped before measuring.")
    iterations: int = Field(10, ge=1, description="profile: measured runs.")
    threads: int = Field(0, ge=0, description="profile: onnxruntime intra-op threads (0: its default).")
    providers: list[str] | None = Field(None, description="profile: execution providers in order of "
                                        "preference (default: CPU).")
