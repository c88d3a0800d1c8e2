import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scaling.measure import training_flops
from scaling.models import DataSpec, build_model
from scaling.train import loss_fn_for


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
    assert flops["analytic"] == 0


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_gru_counter_matches_closed_form():
    gru = nn.GRU(10, 20)
    with FlopCounterMode(display=False) as fc:
        gru(torch.randn(7, 4, 10))
    assert fc.get_total_flops() == 2 * 4 * 7 * 3 * 20 * (10 + 20) == 100_800


def test_lstm_flops_are_counted_analytically_and_linear_in_sequence_length():
    cfg = _Cfg(cell="lstm", hidden=16, layers=2)
    flops = []
    for seq_len in (32, 64):
        model = build_model(
            _Cfg(family="rnn", **cfg.__dict__), DataSpec("tokens", "lm", (seq_len,), 50)
        )
        x = torch.randint(0, 50, (4, seq_len))
        f = training_flops(model, x, x, loss_fn_for("lm"))
        assert f["analytic"] > 0
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
    assert f["analytic"] == 2 * recurrent + recurrent_hh
    head = 2 * B * h * 10
    assert f["total"] == f["analytic"] + 3 * head


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
    assert f["analytic"] == attention
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
