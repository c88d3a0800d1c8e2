"""The training loss of each task, and validation: loss, accuracy and the final metrics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def loss_fn_for(task: str):
    if task == "regression":
        return F.mse_loss
    # classification: (B, C) logits; language modelling: (B, T, V) logits
    return lambda logits, y: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def eval_batch_size(trainer) -> int:
    """Examples per evaluation pass: at least 256, but never more than a micro-batch when the
    point accumulates (its micro-batch is what fits the device)."""
    if trainer.grad_accum > 1:
        return trainer.micro_batch
    return max(trainer.micro_batch, 256)


@torch.no_grad()
def evaluate(model, data, device, autocast, batch_size: int, final: bool = False) -> dict:
    """Validation loss (nats) and accuracy; on the final pass also P/R/F1, R² and bits per byte.
    The sums stay on the device until the end: one host sync per evaluation."""
    model.eval()
    task = data.spec.task
    wide = torch.float32 if torch.device(device).type == "mps" else torch.float64  # no fp64 on MPS
    total = torch.zeros((), device=device, dtype=wide)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count, preds = 0, []
    x_val, y_val = data.val_on(device)
    for i in range(0, len(x_val), batch_size):
        x, y = x_val[i : i + batch_size], y_val[i : i + batch_size]
        with autocast():
            out = model(x).float()
        count += y.numel()
        if task == "regression":
            total += F.mse_loss(out, y, reduction="sum")
            preds.append(out)
            continue
        logits = out.reshape(-1, out.shape[-1])
        total += F.cross_entropy(logits, y.reshape(-1), reduction="sum")
        pred = logits.argmax(-1)
        correct += (pred == y.reshape(-1)).sum()
        if final and task == "classification":
            preds.append(pred)
    total, correct = total.item(), correct.item()  # the one sync
    model.train()
    metrics = {"val_loss": total / count}
    if task != "regression":
        metrics["val_accuracy"] = correct / count
    if final and task == "classification":
        from sklearn.metrics import precision_recall_fscore_support

        p, r, f1, _ = precision_recall_fscore_support(
            data.y_val.numpy(), torch.cat(preds).cpu().numpy(), average="macro", zero_division=0
        )
        metrics.update(val_precision=float(p), val_recall=float(r), val_f1=float(f1))
    if final and task == "regression":
        from sklearn.metrics import r2_score

        metrics["val_r2"] = float(r2_score(data.y_val.numpy(), torch.cat(preds).cpu().numpy()))
    if final and task == "lm" and data.bytes_per_token:
        metrics["val_bpb"] = metrics["val_loss"] / math.log(2) / data.bytes_per_token
    return metrics
