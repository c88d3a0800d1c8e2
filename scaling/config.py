"""Structured configs for every group, registered in Hydra's ConfigStore, and their validation.

The YAML files in conf/ hold only values; the types, defaults and checks live
here. ``OmegaConf.to_object`` builds these dataclasses, so every check in a
``__post_init__`` runs on every composed point before anything trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


def _positive(obj, *names, allow_zero=False):
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and not allow_zero):
            bound = "≥ 0" if allow_zero else "> 0"
            raise ValueError(f"{obj._group}.{name} must be {bound}, got {value}")


# ---------------------------------------------------------------- model


@dataclass
class ModelConfig:
    family: str = MISSING  # registry key in scaling.models
    # one knob: an integer (the family's rule) or a named size; it sets the size fields
    size: Any = None
    # sp: standard parametrisation; mup: μP (scaling.mup), width multiplier width/optim.base_width
    parametrization: str = "sp"
    base_width: int = 64  # μP's base model: the width at which hyperparameters were tuned
    _group = "model"

    def __post_init__(self):
        if self.parametrization not in ("sp", "mup"):
            raise ValueError(
                f"model.parametrization must be sp or mup, got '{self.parametrization}'"
            )


@dataclass
class MLPConfig(ModelConfig):
    family: str = "mlp"
    width: int = 64  # hidden units per layer
    depth: int = 2  # hidden layers
    activation: str = "gelu"  # relu | gelu | tanh | silu
    share_layers: bool = False  # hidden layers 2…depth share one weight matrix (weight sharing)

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "width", "depth")


@dataclass
class CNNConfig(ModelConfig):
    family: str = "cnn"
    channels: int = 16  # filters per conv layer
    depth: int = 2  # conv layers
    kernel: int = 5  # kernel size (odd keeps the length)

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "channels", "depth", "kernel")


@dataclass
class RNNConfig(ModelConfig):
    family: str = "rnn"
    cell: str = "lstm"  # lstm | gru
    hidden: int = 64  # units per layer
    layers: int = 1  # stacked layers

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "hidden", "layers")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"model.cell must be lstm or gru, got '{self.cell}'")


@dataclass
class TransformerConfig(ModelConfig):
    family: str = "transformer"
    d_model: int = 64  # residual width
    n_layer: int = 2  # blocks
    n_head: int = 4  # attention heads; must divide d_model
    context: int | None = None  # position table size; default: the data's sequence length
    aspect: int = 32  # model.size=k gives d_model = aspect·k ...
    head_dim: int = 16  # ... and n_head = d_model / head_dim
    # recompute each block's activations in the backward pass: less memory, about 1/3 more FLOPs
    checkpoint_activations: bool = False

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "d_model", "n_layer", "n_head", "context", "aspect", "head_dim")
        if self.d_model % self.n_head:
            raise ValueError(f"model.n_head={self.n_head} must divide model.d_model={self.d_model}")


@dataclass
class LinearConfig(ModelConfig):
    family: str = "linear"


# ---------------------------------------------------------------- data


@dataclass
class DataConfig:
    name: str = MISSING  # registry key in scaling.data
    train_size: int | None = None  # unique training examples (tokens for text); None: all
    val_size: int = 2000  # validation examples (windows for text)
    seed: int = 0  # seed of the generated data (not of training)
    _group = "data"

    def __post_init__(self):
        _positive(self, "train_size", "val_size")


@dataclass
class MNIST1DConfig(DataConfig):
    name: str = "mnist1d"
    train_size: int | None = 20000
    val_size: int = 4000
    val_seed: int = 1_000_003  # the validation set is generated apart and stays fixed


@dataclass
class DigitsConfig(DataConfig):
    name: str = "digits"
    val_fraction: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class TeacherConfig(DataConfig):
    name: str = "teacher"
    train_size: int | None = 10000
    in_dim: int = 16
    out_dim: int = 1
    teacher_width: int = 64
    teacher_depth: int = 2
    noise: float = 0.05  # std of the Gaussian noise on targets

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "train_size", "in_dim", "out_dim", "teacher_width", "teacher_depth")
        _positive(self, "noise", allow_zero=True)
        if self.train_size is None:
            raise ValueError("data.train_size must be set for data=teacher")


@dataclass
class TextConfig(DataConfig):
    name: str = "text"
    path: str | None = None  # a file or folder; None: the Python standard library's source
    glob: str = "**/*"  # files to read in a folder
    max_bytes: int = 4_000_000  # cap on the corpus
    seq_len: int = 64  # tokens (bytes) per training sequence
    val_fraction: float = 0.05  # tail of the corpus held out
    val_size: int = 256  # validation windows

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "max_bytes", "seq_len")
        if self.path is not None:
            from pathlib import Path

            if not Path(self.path).expanduser().exists():
                raise ValueError(f"data.path does not exist: {self.path}")


@dataclass
class TokensConfig(DataConfig):
    name: str = "tokens"
    path: str = MISSING  # folder with train.bin and val.bin (uint16, nanoGPT format)
    vocab_size: int = 50304
    seq_len: int = 256
    val_size: int = 256
    bytes_per_token: float | None = None  # set it to get bits per byte

    def __post_init__(self):
        super().__post_init__()
        _positive(self, "vocab_size", "seq_len")
        from pathlib import Path

        for split in ("train.bin", "val.bin"):
            if not (Path(self.path).expanduser() / split).is_file():
                raise ValueError(f"data.path has no {split}: {self.path}")


@dataclass
class TorchvisionConfig(DataConfig):
    name: str = "torchvision"
    dataset: str = "mnist"  # mnist | cifar10
    root: str = "~/.cache/scaling/torchvision"
    download: bool = True
    val_size: int = 10000


# ---------------------------------------------------------------- optim, trainer, logger


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 3e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    momentum: float = 0.9  # sgd only
    warmup: float = 0.05  # fraction of steps with linear warmup
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1  # cosine decays to lr·min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    # none: lr for every size; width: lr·base_width/width (the family's width field), lr ∝ 1/width
    lr_scaling: str = "none"
    base_width: int = 64
    _group = "optim"

    def __post_init__(self):
        if self.name not in ("adamw", "sgd"):
            raise ValueError(f"optim.name must be adamw or sgd, got '{self.name}'")
        if self.lr_scaling not in ("none", "width"):
            raise ValueError(f"optim.lr_scaling must be none or width, got '{self.lr_scaling}'")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"optim.schedule must be cosine or constant, got '{self.schedule}'")
        _positive(self, "lr")
        _positive(self, "weight_decay", "grad_clip", "min_lr_ratio", allow_zero=True)
        if not 0 <= self.warmup < 1:
            raise ValueError(
                f"optim.warmup is a fraction of the steps in [0, 1), got {self.warmup}"
            )


BUDGETS = ("steps", "epochs", "tokens_per_param", "flops")
BACKENDS = ("auto", "gloo", "nccl")  # torch.distributed's, for trainer.nproc


@dataclass
class TrainerConfig:
    budget: str = "steps"  # which of the four fields below sets the training length
    steps: int | None = 500
    epochs: float | None = None  # passes over data.train_size
    tokens_per_param: float | None = None  # D = r·N examples (tokens for LM), e.g. 20
    target_flops: float | None = None  # train until this many measured FLOPs
    batch_size: int = 128
    eval_interval: int = 100  # steps between validation passes (and history rows)
    early_stop_patience: int | None = None  # stop after this many evals without improvement
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    compile: bool = False  # torch.compile the model
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # steps between checkpoints; an interrupted point resumes from the last one
    checkpoint_every: int | None = None
    save_model: bool = False  # keep the trained weights as model.pt (a teacher, compression later)
    # train seeds seed … seed+K-1 of this point at once (torch.func.vmap): K rows from one run
    pack_seeds: int = 1
    # one point as nproc processes (torchrun; DDP, or FSDP2 with fsdp=true): see scaling.distributed
    nproc: int = 1
    fsdp: bool = False  # shard parameters, gradients and optimizer state across the nproc processes
    backend: str = "auto"  # auto (nccl on GPUs, gloo on CPU) | nccl | gloo
    # examples per process per forward pass; batch_size / (micro_batch_size·nproc) micro-batches
    # are accumulated per step. None: batch_size / nproc (no accumulation)
    micro_batch_size: int | None = None
    # a torch.profiler trace of a few steps in <point>/profile/, the top operations in the log
    profile: bool = False
    _group = "trainer"

    def __post_init__(self):
        if self.budget not in BUDGETS:
            raise ValueError(
                f"trainer.budget must be one of {', '.join(BUDGETS)}, got '{self.budget}'"
            )
        needed = {
            "steps": "steps",
            "epochs": "epochs",
            "tokens_per_param": "tokens_per_param",
            "flops": "target_flops",
        }
        if getattr(self, needed[self.budget]) is None:
            raise ValueError(f"trainer.budget={self.budget} needs trainer.{needed[self.budget]}")
        _positive(
            self,
            "steps",
            "epochs",
            "tokens_per_param",
            "target_flops",
            "batch_size",
            "eval_interval",
            "early_stop_patience",
            "threads",
            "checkpoint_every",
            "pack_seeds",
            "nproc",
            "micro_batch_size",
        )
        self._check_batches()
        if self.pack_seeds > 1:
            clash = [
                name
                for name, on in (
                    ("early_stop_patience", self.early_stop_patience),
                    ("checkpoint_every", self.checkpoint_every),
                    ("precision=fp16", self.precision == "fp16"),
                    ("nproc", self.nproc > 1),
                    ("fsdp", self.fsdp),
                    ("micro_batch_size", self.micro_batch_size),
                )
                if on
            ]
            if clash:
                raise ValueError(f"trainer.pack_seeds does not combine with trainer.{clash[0]}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(
                f"trainer.precision must be auto, fp32, bf16 or fp16, got '{self.precision}'"
            )

    def _check_batches(self):
        if self.backend not in BACKENDS:
            raise ValueError(
                f"trainer.backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'"
            )
        if self.batch_size % self.nproc:
            raise ValueError(
                f"trainer.batch_size={self.batch_size} does not split over trainer.nproc={self.nproc}"
            )
        per_process = self.batch_size // self.nproc
        if self.micro_batch_size and per_process % self.micro_batch_size:
            raise ValueError(
                f"trainer.micro_batch_size={self.micro_batch_size} does not divide the "
                f"{per_process} examples per process per step (batch_size={self.batch_size}, "
                f"nproc={self.nproc})"
            )
        if self.fsdp and self.precision == "fp16":
            raise ValueError("trainer.fsdp does not combine with precision=fp16; use bf16")


@dataclass
class LoggerConfig:
    name: str = "csv"  # csv | tensorboard | mlflow; history.csv is always written
    # mlflow: where runs go; None: $MLFLOW_TRACKING_URI, else sqlite:///<out>/mlruns.db
    tracking_uri: str | None = None
    experiment: str | None = None  # mlflow experiment; None: the sweep's name


# ---------------------------------------------------------------- compress, distill


COMPRESS_METHODS = ("none", "prune", "quantize", "cast")


@dataclass
class CompressConfig:
    """A post-training step: each level is evaluated and becomes a row of its own."""

    method: str = "none"  # none | prune | quantize | cast
    # prune: fractions of weights set to zero; quantize: int8 (dynamic); cast: bf16 | fp16
    levels: list[Any] = field(default_factory=list)
    scope: str = "global"  # prune: smallest magnitudes over all layers (global) or per layer
    _group = "compress"

    def __post_init__(self):
        if self.method not in COMPRESS_METHODS:
            raise ValueError(
                f"compress.method must be one of {', '.join(COMPRESS_METHODS)}, got '{self.method}'"
            )
        if self.scope not in ("global", "layer"):
            raise ValueError(f"compress.scope must be global or layer, got '{self.scope}'")
        allowed = {"quantize": ("int8",), "cast": ("bf16", "fp16")}.get(self.method)
        for level in self.levels:
            if self.method == "prune" and not (isinstance(level, (int, float)) and 0 <= level < 1):
                raise ValueError(f"compress.levels: sparsities lie in [0, 1), got {level}")
            if allowed and level not in allowed:
                raise ValueError(
                    f"compress.levels for {self.method}: choose from {', '.join(allowed)}, "
                    f"got '{level}'"
                )
        if self.method != "none" and not self.levels:
            raise ValueError(f"compress.method={self.method} needs compress.levels")


@dataclass
class DistillConfig:
    """Knowledge distillation: loss = (1-alpha)·hard-label loss + alpha·T²·KL(teacher ‖ student).

    The teacher is a path (a point folder, a sweep folder, whose best saved model
    is taken, or a model.pt file), or ``teacher_overrides``: the settings that
    turn the student's config into the teacher's, trained once inside the study.
    """

    alpha: float = 0.0  # 0: plain training
    temperature: float = 2.0
    teacher: str | None = None
    teacher_overrides: list[str] | None = None  # e.g. [model.width=512]
    _group = "distill"

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha}")
        _positive(self, "temperature")
        if self.alpha > 0 and not (self.teacher or self.teacher_overrides):
            raise ValueError("distill.alpha > 0 needs distill.teacher or distill.teacher_overrides")

    @property
    def on(self) -> bool:
        return self.alpha > 0


# ---------------------------------------------------------------- top level


@dataclass
class Config:
    model: Any = MISSING
    data: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    sweep: str = "run"  # the study's name (a preset's name)
    out: str = "outputs/run"  # the study's folder; points go to out/points/<point_id>/
    # stop launching points after this many failures in a row (`scale sweep --max-failures`)
    max_failures: int | None = None
    # a preset's explicit points (paired settings), each a dict of overrides
    points: list[dict[str, Any]] | None = None


GROUPS = {
    "model": {
        "mlp": MLPConfig,
        "cnn": CNNConfig,
        "rnn": RNNConfig,
        "transformer": TransformerConfig,
        "linear": LinearConfig,
    },
    "data": {
        "mnist1d": MNIST1DConfig,
        "digits": DigitsConfig,
        "teacher": TeacherConfig,
        "text": TextConfig,
        "tokens": TokensConfig,
        "torchvision": TorchvisionConfig,
    },
    "optim": {"adamw": OptimConfig, "sgd": OptimConfig},
    "trainer": {"default": TrainerConfig},
    "logger": {"csv": LoggerConfig, "tensorboard": LoggerConfig, "mlflow": LoggerConfig},
    "compress": {m: CompressConfig for m in COMPRESS_METHODS},
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (the YAML in conf/ extends ``<name>_schema``)."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, options in GROUPS.items():
        for name, node in options.items():
            cs.store(group=group, name=f"{name}_schema", node=node)


register()
