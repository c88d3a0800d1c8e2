"""Training batches, drawn on the device from the point's seed."""

from __future__ import annotations

import torch


class Batches:
    """Random training batches drawn on the device: shuffled epochs, or windows of a token stream.

    In a process group every rank draws the same global batch of ``batch_size`` from the
    same seed and keeps its own slice (``rank`` of ``world``): disjoint shards whose union
    is the batch a single process would train on.
    """

    def __init__(self, data, batch_size: int, device: torch.device, seed: int,
                 rank: int = 0, world: int = 1):  # fmt: skip
        self.lm = data.spec.task == "lm"
        self.x = data.x_train.to(device)
        self.y = None if self.lm else data.y_train.to(device)
        self.batch_size, self.seq_len = batch_size, data.spec.input_shape[0]
        share = batch_size // world
        self.shard = slice(rank * share, (rank + 1) * share) if world > 1 else slice(None)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.order, self.pos = None, 0

    def state(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self.order, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.order, self.pos = state["order"], state["pos"]
        if self.order is not None:
            self.order = self.order.to(self.x.device)

    def __next__(self):
        if self.lm:
            starts = torch.randint(
                len(self.x) - self.seq_len - 1,
                (self.batch_size,),
                device=self.x.device,
                generator=self.gen,
            )[self.shard]
            idx = starts[:, None] + torch.arange(self.seq_len + 1, device=self.x.device)
            window = self.x[idx]
            return window[:, :-1], window[:, 1:]
        n = len(self.x)
        if self.order is None or self.pos + self.batch_size > n:
            self.order = torch.randperm(n, device=self.x.device, generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size][self.shard]
        self.pos += self.batch_size
        return self.x[idx], self.y[idx]
