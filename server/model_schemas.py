"""The model zoo's configs: ``RunConfig.model``, a union on ``kind`` separate from the task.

Each kind states what data it can take (``check``: a list of ``(field, reason)`` against the
task's :class:`~server.dataspec.DataSpec`), so a mismatch is a 422 at submit naming
``model.<field>``; the worker builds the same model in ``worker.training.zoo`` and
``server.model_params`` counts its parameters without torch.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from server.dataspec import DataSpec
from server.schema_base import KindBase
from server.validation import field_error

Problem = tuple[str, str]  # (field of the model config, reason)

Width = Annotated[int, Field(ge=1, le=16384)]
Norm = Literal["none", "batchnorm", "layernorm"]
ConvNorm = Literal["none", "batchnorm"]


def _needs_classes(spec: DataSpec) -> list[Problem]:
    if spec.target != "class":
        return [("kind", "this model classifies whole examples; the task predicts next tokens")]
    return []


def _needs_images(kind: str, spec: DataSpec) -> list[Problem]:
    if spec.input != "image":
        return [
            (
                "kind",
                f"{kind} needs image input (channels, height, width); the task gives "
                f"{spec.input} input of shape {list(spec.shape)}",
            )
        ]
    return _needs_classes(spec)


class MlpModel(KindBase):
    """Fully connected network on flattened inputs (vectors or images)."""

    kind: Literal["mlp"] = "mlp"
    widths: list[Width] = Field(
        default=[256, 256],
        min_length=1,
        max_length=16,
        title="Hidden widths",
        description="units of each hidden layer, first to last",
    )
    activation: Literal["relu", "gelu", "tanh"] = Field(default="relu", title="Activation")
    norm: Norm = Field(
        default="none", title="Normalization", description="after each hidden Linear"
    )

    def check(self, spec: DataSpec) -> list[Problem]:
        if spec.input == "tokens":
            return [
                (
                    "kind",
                    "mlp needs vector or image input; the task gives token ids "
                    "(use gpt for next-token data)",
                )
            ]
        return _needs_classes(spec)


class CnnModel(KindBase):
    """VGG-style: stages of 3×3 convolutions (each followed by the norm and a ReLU), 2×2
    pooling after each stage, global average pooling and a linear classifier."""

    kind: Literal["cnn"] = "cnn"
    channels: list[Width] = Field(
        default=[32, 64, 128], min_length=1, max_length=6, title="Channels per stage"
    )
    convs: int = Field(default=2, ge=1, le=4, title="Convolutions per stage")
    norm: ConvNorm = Field(default="batchnorm", title="Normalization")
    pool: Literal["max", "avg"] = Field(default="max", title="Pooling between stages")

    def check(self, spec: DataSpec) -> list[Problem]:
        problems = _needs_images("cnn", spec)
        if not problems and min(spec.shape[1:]) >> len(self.channels) == 0:
            side = min(spec.shape[1:])
            problems.append(
                (
                    "channels",
                    f"{len(self.channels)} stages halve a {side}-pixel "
                    "side to nothing: use fewer stages",
                )
            )
        return problems


RESNET_DEPTHS = "18, or 6n + 2 from 8 to 110 (20, 32, 44, 56, 110)"


class ResNetModel(KindBase):
    """Residual network (He et al. 2016).

    ``depth`` 6n + 2: the CIFAR ResNet (3×3 stem, three stages of n basic blocks with 16, 32 and
    64 channels, parameter-free shortcuts that subsample and zero-pad); 18: ResNet-18 (3×3 stem for
    small images, four stages of two basic blocks with 64 … 512 channels, 1×1 projection
    shortcuts).  ``width`` multiplies every channel count.
    """

    kind: Literal["resnet"] = "resnet"
    depth: int = Field(default=20, ge=8, le=110, title="Depth", description=RESNET_DEPTHS)
    width: float = Field(
        default=1.0,
        ge=0.0625,
        le=8,
        title="Width multiplier",
        description="times each stage's channels (at least 1 channel)",
    )
    norm: ConvNorm = Field(default="batchnorm", title="Normalization")

    @model_validator(mode="after")
    def _known_depth(self) -> ResNetModel:
        if self.depth != 18 and (self.depth - 2) % 6:
            raise field_error(self, "depth", message=f"must be {RESNET_DEPTHS}")
        return self

    @property
    def stage_channels(self) -> list[int]:
        base = [64, 128, 256, 512] if self.depth == 18 else [16, 32, 64]
        return [max(1, round(c * self.width)) for c in base]

    @property
    def blocks_per_stage(self) -> int:
        return 2 if self.depth == 18 else (self.depth - 2) // 6

    def check(self, spec: DataSpec) -> list[Problem]:
        return _needs_images("resnet", spec)


class TransformerModel(KindBase):
    """Fields and rules the transformers share."""

    width: int = Field(default=256, ge=1, le=8192, title="Width (d_model)")
    heads: int = Field(default=4, ge=1, le=64, title="Attention heads")
    mlp_ratio: int = Field(default=4, ge=1, le=8, title="MLP hidden units per width")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModel:
        if self.width % self.heads:
            raise field_error(self, "width", message=f"must be a multiple of heads ({self.heads})")
        return self


class VitModel(TransformerModel):
    """Vision transformer (Dosovitskiy et al. 2021): non-overlapping patches, a class token,
    learned position embeddings, pre-LayerNorm blocks, the class token read out."""

    kind: Literal["vit"] = "vit"
    patch_size: int = Field(default=4, ge=1, le=64, title="Patch size (pixels)")
    depth: int = Field(default=6, ge=1, le=48, title="Blocks")

    def check(self, spec: DataSpec) -> list[Problem]:
        problems = _needs_images("vit", spec)
        if not problems and any(side % self.patch_size for side in spec.shape[1:]):
            problems.append(
                ("patch_size", f"must divide the image's height and width {list(spec.shape[1:])}")
            )
        return problems


class GptModel(TransformerModel):
    """Decoder-only transformer (GPT-2 layout): token and learned position embeddings,
    pre-LayerNorm causal blocks, a final LayerNorm, logits for every position."""

    kind: Literal["gpt"] = "gpt"
    layers: int = Field(default=4, ge=1, le=48, title="Blocks")
    context: int = Field(
        default=128,
        ge=1,
        le=8192,
        title="Context length",
        description="positions the model takes; at least the data's context",
    )
    tied_embeddings: bool = Field(
        default=True,
        title="Tied embeddings",
        description="the output layer reuses the token embedding",
    )

    def check(self, spec: DataSpec) -> list[Problem]:
        if spec.input != "tokens" or spec.target != "next_token":
            return [
                (
                    "kind",
                    "gpt needs next-token data (a text data set); the task gives "
                    f"{spec.input} input with {spec.target} targets",
                )
            ]
        if self.context < spec.shape[0]:
            return [("context", f"must be at least the data's context ({spec.shape[0]})")]
        return []


ModelConfig = Annotated[
    MlpModel | CnnModel | ResNetModel | VitModel | GptModel, Field(discriminator="kind")
]
