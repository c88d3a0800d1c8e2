"""After training: how much of a model survives pruning, quantization or a narrower float type.

``compress=prune|quantize|cast`` with ``compress.levels``: ``variants`` gives a
compressed copy of the trained model at each level; the runner evaluates each on the
validation set and writes it as a row of its own, ``points/<id>~<level>/result.json``,
beside the point's own row (the model as trained): the same training columns, with the
compressed model's loss, accuracy, non-zero parameters and bytes on disk.

- prune: ``torch.nn.utils.prune``, L1 magnitude, over all weight matrices at once
  (``scope=global``) or layer by layer; weights shared between modules (a tied
  embedding and head) are left whole.
- quantize: ``torch.ao.quantization.quantize_dynamic`` on Linear/LSTM/GRU, int8
  weights; it runs on the CPU. (Its fp16 mode saves larger files than fp32 on
  CPU builds; ``cast`` is the way to fp16.)
- cast: the weights and the computation in bf16 or fp16.

Bytes on disk: the saved state dict, with each weight matrix stored sparse (CSR)
where that is smaller, as one would store a pruned model.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

CASTS = {"bf16": torch.bfloat16, "fp16": torch.float16}
QUANTIZED = {"int8": torch.qint8}


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, name) of every weight matrix that belongs to one module only."""
    owners: dict[int, list] = {}
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            continue
        for name, p in module.named_parameters(recurse=False):
            if p.dim() >= 2 and name.startswith("weight"):
                owners.setdefault(id(p), []).append((module, name))
    shared = {id(p) for m in model.modules() for p in m.parameters(recurse=False)
              if isinstance(m, nn.Embedding)}  # fmt: skip
    return [found[0] for pid, found in owners.items() if len(found) == 1 and pid not in shared]


def pruned(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude ``sparsity`` of its weights set to zero."""
    model = copy.deepcopy(model)
    targets = prunable(model)
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=sparsity)
    for module, name in targets:
        prune.remove(module, name)  # the zeros become part of the weights
    return model


class Cast(nn.Module):
    """A model whose weights and floating-point inputs are in ``dtype``."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.inner, self.dtype = copy.deepcopy(model).to(dtype), dtype

    def forward(self, x):
        return self.inner(x.to(self.dtype) if x.is_floating_point() else x)


# warnings.catch_warnings swaps the process's filters: blocks in threads of one process
# (hydra/launcher=threads) that overlapped could leave "ignore" in place for good
QUIET = threading.Lock()


def quantized(model: nn.Module, level: str) -> nn.Module:
    layers = {nn.Linear, nn.LSTM, nn.GRU}
    with QUIET, warnings.catch_warnings():  # torch.ao.quantization warns that it moves to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).cpu(), layers, dtype=QUANTIZED[level]
        )


def variant(model: nn.Module, cfg, level, device: torch.device) -> tuple[nn.Module, torch.device]:
    """The compressed model for one level of ``cfg`` (``compress``), and the device it runs on."""
    if cfg.method == "prune":
        return pruned(model, float(level), cfg.scope), device
    if cfg.method == "quantize":
        return quantized(model, str(level)), torch.device("cpu")
    return Cast(model, CASTS[str(level)]), device


def level_name(cfg, level) -> str:
    return f"sparsity{float(level):g}" if cfg.method == "prune" else str(level)


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the prunable weights."""
    weights = [getattr(m, name) for m, name in prunable(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def nonzero_params(model: nn.Module) -> int:
    """Non-zero entries of the state dict's tensors (quantized weights included)."""
    count = 0
    for t in _tensors(model):
        count += int(torch.count_nonzero(t.dequantize() if t.is_quantized else t))
    return count


def stored_bytes(model: nn.Module) -> int:
    """Bytes of the saved state dict, each weight matrix saved as CSR where that file is smaller."""
    state = {}
    for name, t in model.state_dict().items():
        if isinstance(t, torch.Tensor) and t.dim() == 2 and not t.is_quantized:
            with QUIET, warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore")
                csr = t.to_sparse_csr()
                t = csr if _saved_size(csr) < _saved_size(t) else t
        state[name] = t
    return _saved_size(state)


def _saved_size(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer().nbytes


def _tensors(model: nn.Module):
    seen = set()
    for t in model.state_dict().values():
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            yield t
        elif isinstance(t, tuple):  # packed quantized params
            yield from (x for x in t if isinstance(x, torch.Tensor))


def measures(model: nn.Module, method: str) -> dict:
    """A compressed model's row fields: bytes on disk, non-zero parameters, sparsity (pruning)."""
    return {"model_bytes": stored_bytes(model), "params_nonzero": nonzero_params(model),
            "sparsity": sparsity(model) if method == "prune" else None}  # fmt: skip
