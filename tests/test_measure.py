import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scaling.data import DataSpec
from scaling.measure import flops_disagreement, training_flops
from scaling.models import FAMILIES, build_model
from scaling.training.evaluate import loss_fn_for


def test_matmul_flops_are_two_per_multiply_add():
    with FlopCounterMode(display=False) as fc:
        torch.mm(torch.randn(4, 5), torch.randn(5, 6))
    assert fc.get_total_flops() == 240


def test_linear_forward_and_backward_flops():
    layer = nn.Linear(30, 40)
    x = torch.randn(8, 30)
    with FlopCounterMode(display=False) as fc:
        layer(x)
    assert fc.get_total_flops() == 2 * 8 * 30 * 40 == 19_200
    # on raw data no input gradient is needed: backward costs one forward
    with FlopCounterMode(display=False) as fc:
        layer(x).sum().backward()
    assert fc.get_total_flops() == 2 * 19_200
    # with an input that needs its gradient, backward costs two forwards: 3x in all
    with FlopCounterMode(display=False) as fc:
        layer(x.requires_grad_()).sum().backward()
    assert fc.get_total_flops() == 3 * 19_200


def test_mlp_training_flops_match_the_layers():
    model = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = torch.randn(32, 40), torch.randint(0, 10, (32,))
    flops = training_flops(model, x, y, loss_fn_for("classification"))
    first, second = 2 * 32 * 40 * 64, 2 * 32 * 64 * 10
    assert flops["total"] == 2 * first + 3 * second
    assert flops["uncounted"] == 0


def _Cfg(family: str, **fields):
    """A family's model config with these fields."""
    return FAMILIES[family].Config(**fields)


def test_gru_counter_matches_closed_form():
    gru = nn.GRU(10, 20)
    with FlopCounterMode(display=False) as fc:
        gru(torch.randn(7, 4, 10))
    assert fc.get_total_flops() == 2 * 4 * 7 * 3 * 20 * (10 + 20) == 100_800


def test_lstm_flops_are_counted_analytically_and_linear_in_sequence_length():
    flops = []
    for seq_len in (32, 64):
        cfg = _Cfg("rnn", cell="lstm", hidden=16, layers=2)
        model = build_model(cfg, DataSpec("tokens", "lm", (seq_len,), 50))
        x = torch.randint(0, 50, (4, seq_len))
        f = training_flops(model, x, x, loss_fn_for("lm"))
        assert f["uncounted"] > 0
        flops.append(f["total"])
    assert flops[1] == 2 * flops[0]


def test_gru_is_not_counted_twice():
    model = build_model(
        _Cfg(family="rnn", cell="gru", hidden=16, layers=1),
        DataSpec("vector", "classification", (40,), 10),
    )
    x, y = torch.randn(8, 40), torch.randint(0, 10, (8,))
    f = training_flops(model, x, y, loss_fn_for("classification"))
    g, h, T, B = 3, 16, 40, 8
    recurrent = 2 * B * T * g * h * (1 + h)
    recurrent_hh = 2 * B * T * g * h * h
    # forward + weight grads + hidden-state grads (no input grad on raw data)
    assert f["uncounted"] == 2 * recurrent + recurrent_hh
    head = 2 * B * h * 10
    assert f["total"] == f["uncounted"] + 3 * head


def test_transformer_flops_are_6nd_plus_attention():
    cfg = _Cfg(family="transformer", d_model=64, n_layer=2, n_head=4, context=None)
    B, T, V = 4, 32, 128
    model = build_model(cfg, DataSpec("tokens", "lm", (T,), V))
    x = torch.randint(0, V, (B, T))
    f = training_flops(model, x, x, loss_fn_for("lm"))
    blocks = 12 * 64 * 64 * 2  # weight matrices of the blocks
    tokens = B * T
    attention = 12 * 2 * T * 64 * tokens
    head = 6 * 64 * V * tokens
    assert f["uncounted"] == attention
    assert f["total"] == 6 * blocks * tokens + head + attention


def test_peak_memory_sees_a_large_allocation_on_cpu():
    from scaling.measure import PeakMemory

    with PeakMemory(torch.device("cpu")) as big:
        x = torch.ones(50_000_000)  # 200 MB, touched
        del x
    with PeakMemory(torch.device("cpu")) as small:
        torch.ones(10)
    assert big.peak >= 150_000_000
    assert small.peak < big.peak / 10  # the mark was reset: the next block does not inherit it



def test_peak_memory_in_a_thread_leaves_the_process_mark_alone():
    import threading

    from scaling.measure import PeakMemory

    def beside():  # a point in a thread of the same process, measuring its own block
        with PeakMemory(torch.device("cpu")):
            torch.ones(10)

    with PeakMemory(torch.device("cpu")) as big:
        x = torch.ones(50_000_000)  # 200 MB, touched, then given back
        del x
        thread = threading.Thread(target=beside)
        thread.start()
        thread.join()
    assert big.peak >= 150_000_000  # the thread did not reset the mark under the main block


CROSS_CHECK = [
    (
        "mlp",
        dict(width=24, depth=3, activation="gelu"),
        DataSpec("vector", "classification", (40,), 10),
    ),
    ("linear", {}, DataSpec("image", "classification", (1, 8, 8), 10)),
    ("cnn", dict(channels=8, depth=3, kernel=5), DataSpec("vector", "classification", (40,), 10)),
    (
        "cnn",
        dict(channels=8, depth=2, kernel=3),
        DataSpec("image", "classification", (3, 16, 16), 10),
    ),
    ("rnn", dict(cell="lstm", hidden=16, layers=2), DataSpec("tokens", "lm", (24,), 50)),
    (
        "rnn",
        dict(cell="gru", hidden=16, layers=1),
        DataSpec("image", "classification", (1, 8, 8), 10),
    ),
    (
        "transformer",
        dict(d_model=32, n_layer=2, n_head=4, context=None),
        DataSpec("tokens", "lm", (24,), 50),
    ),
    (
        "transformer",
        dict(d_model=32, n_layer=2, n_head=4, context=None),
        DataSpec("vector", "classification", (40,), 10),
    ),
]


@pytest.mark.parametrize(
    "family,fields,spec", CROSS_CHECK, ids=lambda v: v if isinstance(v, str) else None
)
def test_closed_form_flops_match_the_counter_for_every_family(family, fields, spec):
    model = build_model(_Cfg(family=family, **fields), spec)
    B = 6
    if spec.kind == "tokens":
        x = torch.randint(0, spec.n_outputs, (B, *spec.input_shape))
        y = x
    else:
        x, y = torch.randn(B, *spec.input_shape), torch.randint(0, spec.n_outputs, (B,))
    f = training_flops(model, x, y, loss_fn_for(spec.task))
    assert f["analytic"] == f["total"]
    assert flops_disagreement(f) is None
    assert flops_disagreement({**f, "total": int(f["total"] * 1.1)}) is not None


def _resnet18():
    """torchvision's ResNet-18, built by hand (torchvision does not import beside the CPU torch build)."""

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu(out + (x if self.down is None else self.down(x)))

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


@pytest.mark.slow
def test_resnet18_matches_published_flops():
    model = _resnet18()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision's count
    x = torch.randn(1, 3, 224, 224)
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() / 2 == pytest.approx(1.814e9, rel=1e-3)  # 1.814 GMACs forward
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    assert fc.get_total_flops() == pytest.approx(10.648e9, rel=1e-3)  # raw input: no input gradient
    with FlopCounterMode(display=False) as fc:
        model(x.requires_grad_()).sum().backward()
    assert fc.get_total_flops() == pytest.approx(10.884e9, rel=1e-3)


def test_a_transformer_sweep_spends_6nd_plus_attention_and_head(in_tmp):
    """PaLM's count: 6·N·D for the weights, 12·L·T·d per token for attention, 6·d·V for the head.

    N is the non-embedding parameter count; its biases and norms are not matrix
    multiplications, so 6·N·D counts them and the measured FLOPs do not.
    """
    import pandas as pd

    from scaling.cli import main

    argv = ["sweep", "transformer_lm", "model.d_model=16,32", "trainer.budget=steps",
            "trainer.steps=3", "data.max_bytes=50000", "trainer.batch_size=4", "trainer.device=cpu",
            "tune.lrs=[]", "--bootstrap", "0"]  # fmt: skip
    assert main(argv) == 0
    df = pd.read_csv(in_tmp / "outputs" / "transformer_lm" / "results.csv")
    assert len(df) == 2
    for r in df.to_dict("records"):
        d, L, T, D = r["model.d_model"], r["model.n_layer"], r["data.seq_len"], r["train_tokens"]
        attention_and_head = D * (12 * L * T * d + 6 * d * 256)
        not_matmul = 6 * D * (r["params_nonembedding"] - 12 * L * d * d)
        assert r["flops_total"] == r["flops_6nd"] + attention_and_head - not_matmul
