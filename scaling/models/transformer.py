"""Transformer: a GPT-2-style decoder for language modelling, an encoder for classification.

GPT-2 layout: learned positions, biases, pre-norm blocks, the output head tied to
the token embedding, so GPT-2 small's shape (d_model=768, n_layer=12, n_head=12,
vocab 50257, context 1024) has 124,439,808 parameters. For vector and image
data each feature (or image row) is a token, attention is not causal, and the
mean over positions feeds a linear head.

Under ``model.parametrization=mup`` (μP, see ``scaling.mup``), with m = d_model/base_width:
the head multiplies its input by 1/m (mup's MuReadout; MuSharedReadout when tied) and, when
not tied to the embedding, starts at zero; the hidden matrices (attention and MLP weights)
start with std 0.02/√m, so their variance goes as 1/fan_in and equals sp's at base width;
attention scores are scaled by √head_dim/d_head instead of 1/√d_head, where head_dim is
``model.head_dim``: 1/d_head as μP needs when heads grow, equal to sp's scale whenever
heads are ``head_dim`` wide (the ``model.size`` ladder at every width, and the default
n_head=4 at base_width=64). A sweep of d_model at fixed n_head should set
``model.head_dim=base_width/n_head`` to match sp at base width. Under sp nothing changes.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config.schema import ModelConfig, positive
from ..measure import layer_flops
from .parametrization import Readout, width_multiplier

KINDS = ("tokens", "vector", "image")
SIZES = {
    "debug": {"d_model": 16, "n_layer": 1, "n_head": 2},
    "small": {"d_model": 64, "n_layer": 2, "n_head": 4},
    "medium": {"d_model": 256, "n_layer": 4, "n_head": 8},
    "gpt2": {"d_model": 768, "n_layer": 12, "n_head": 12},
}


@dataclass
class Config(ModelConfig):
    family: str = "transformer"
    d_model: int = 64  # residual width
    n_layer: int = 2  # blocks
    n_head: int = 4  # attention heads; must divide d_model
    context: int | None = None  # position table size; default: the data's sequence length
    aspect: int = 32  # model.size=k gives d_model = aspect·k ...
    head_dim: int = 16  # ... and n_head = d_model / head_dim
    # recompute each block's activations in the backward pass: less memory, about 1/3 more FLOPs
    checkpoint_activations: bool = False
    WIDTH: ClassVar[str] = "d_model"
    MUP: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        positive(self, "d_model", "n_layer", "n_head", "context", "aspect", "head_dim")


def from_size(k, cfg):
    """``size=k`` sets depth k and width ``aspect``·k, heads of ``head_dim`` (nanochat's ladder)."""
    d_model = cfg.aspect * k
    return {"n_layer": k, "d_model": d_model, "n_head": max(1, d_model // cfg.head_dim)}


class Attention(nn.Module):
    def __init__(self, d_model, n_head, causal, scale=None):
        super().__init__()
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.n_head, self.causal, self.scale = n_head, causal, scale  # None: 1/√d_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, d_model, n_head, causal, scale=None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_head, causal, scale)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg, spec):
        super().__init__()
        self.lm = spec.kind == "tokens"
        if self.lm:
            seq_len = spec.input_shape[0]
            self.wte = nn.Embedding(spec.n_outputs, cfg.d_model)
        elif spec.kind == "image":
            c, seq_len, w = spec.input_shape
            self.wte = nn.Linear(c * w, cfg.d_model)
        else:
            seq_len = spec.input_shape[0]
            self.wte = nn.Linear(1, cfg.d_model)
        context = cfg.context or seq_len
        if context < seq_len:
            raise ValueError(
                f"model.context={context} is shorter than the data's sequences ({seq_len})"
            )
        self.kind, self.d_model, self.n_layer = spec.kind, cfg.d_model, cfg.n_layer
        # recompute each block in the backward pass instead of keeping its activations
        self.checkpoint_activations = bool(getattr(cfg, "checkpoint_activations", False))
        mup = getattr(cfg, "parametrization", "sp") == "mup"  # plain configs without it are sp
        m = width_multiplier(cfg) if mup else 1.0
        scale = math.sqrt(cfg.head_dim) / (cfg.d_model // cfg.n_head) if mup else None
        self.wpe = nn.Embedding(context, cfg.d_model)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_head, self.lm, scale) for _ in range(cfg.n_layer)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if mup:
            self.head = Readout(cfg.d_model, spec.n_outputs, mult=1 / m, bias=not self.lm)
        else:
            self.head = nn.Linear(cfg.d_model, spec.n_outputs, bias=not self.lm)
        if self.lm:
            self.head.weight = self.wte.weight  # tied, as in GPT-2
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if mup:
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.startswith("blocks.") and p.dim() == 2:  # the hidden matrices
                        p.mul_(1 / math.sqrt(m))
                if not self.lm:  # a tied head is the embedding: it keeps the embedding's init
                    self.head.weight.zero_()

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def _tokens(self, x):
        if self.kind == "image":
            return x.permute(0, 2, 1, 3).flatten(2)  # one token per image row
        if self.kind == "vector":
            return x.unsqueeze(-1)
        return x

    def forward(self, x):
        x = self._tokens(x)
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.wte(x) + self.wpe(pos)
        recompute = self.checkpoint_activations and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            # no dropout to replay: the global RNG is left alone (points in threads share it)
            h = (checkpoint(block, h, use_reentrant=False, preserve_rng_state=False)
                 if recompute else block(h))  # fmt: skip
        h = self.ln_f(h)
        return self.head(h if self.lm else h.mean(dim=1))

    uncounted_modules = ()

    def uncounted_flops(self, x: torch.Tensor) -> int:
        """Forward + backward FLOPs of QKᵀ and AV (the counter is told to skip attention).

        4·B·T²·d forward per layer, at full cost even when causal, and twice that backward.
        """
        B, T = x.shape[0], (x.shape[2] if self.kind == "image" else x.shape[1])
        return 3 * 4 * B * T * T * self.d_model * self.n_layer

    def recompute_uncounted_flops(self, x: torch.Tensor) -> int:
        """QKᵀ and AV run again in the backward pass under activation checkpointing: one forward."""
        return self.uncounted_flops(x) // 3

    def analytic_flops(self, x: torch.Tensor) -> int:
        """6 FLOPs per block weight per token (12·d² weights a layer), attention, input and output layers."""
        B = x.shape[0]
        T = x.shape[2] if self.kind == "image" else x.shape[1]
        d = self.d_model
        blocks = layer_flops(2 * B * T * 12 * d * d * self.n_layer, input_grad=True)
        embed = (
            0 if self.lm else layer_flops(2 * B * T * self.wte.in_features * d, input_grad=False)
        )
        rows = B * T if self.lm else B
        head = layer_flops(2 * rows * d * self.head.out_features, input_grad=True)
        return blocks + self.uncounted_flops(x) + embed + head


def build(cfg, spec):
    return Transformer(cfg, spec)
