"""The typed config of a point: one dataclass per group, their defaults, and ``validate``.

Defaults live here and only here; the YAML in conf/ holds what an option changes. A
field's own range or choice is checked in its dataclass's ``__post_init__``; every rule
that combines fields or groups is in ``validate``. Both run once, when a point is
composed (``scaling.config.compose``). A family's model config and a source's data
config live beside its code (``scaling.models.mlp.Config``, ``scaling.data.text.Config``)
and extend ``ModelConfig`` and ``DataConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from .checks import choice, positive
from .studies import CompressConfig, DistillConfig, TuneConfig


@dataclass
class ModelConfig:
    """What every family has; a family's ``Config`` adds its size fields."""

    family: str = MISSING  # registry key in scaling.models
    # one knob: an integer (the family's rule) or a named size; it sets the size fields
    size: Any = None
    # sp: standard parametrisation; mup: μP, width multiplier width/base_width
    parametrization: str = "sp"
    base_width: int = 64  # μP's base model: the width at which hyperparameters were tuned
    GROUP: ClassVar[str] = "model"
    WIDTH: ClassVar[str | None] = None  # the field that grows with width (μP, lr_scaling=width)
    VMAP: ClassVar[bool] = True  # torch.vmap can batch it (trainer.pack_seeds)
    MUP: ClassVar[bool] = False  # the family's readout and attention follow μP

    def __post_init__(self):
        choice(self, "parametrization", ("sp", "mup"))
        positive(self, "base_width")

    @property
    def width_size(self) -> int | None:
        """The value of the family's width field."""
        return None if self.WIDTH is None else getattr(self, self.WIDTH)


@dataclass
class DataConfig:
    name: str = MISSING  # registry key in scaling.data
    train_size: int | None = None  # unique training examples (tokens for text); None: all
    val_size: int = 2000  # validation examples (windows for text)
    seed: int = 0  # seed of the generated data (not of training)
    GROUP: ClassVar[str] = "data"

    def __post_init__(self):
        positive(self, "train_size", "val_size")


LR_RULES = ("none", "width", "olmo", "deepseek")


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 3e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    momentum: float = 0.9  # sgd only
    warmup: float = 0.05  # fraction of steps with linear warmup
    # warmup in steps; None: warmup·steps (a branched point: warmup·its shortest branch)
    warmup_steps: int | None = None
    schedule: str = "cosine"  # cosine | constant | wsd (warmup, stable, decay)
    min_lr_ratio: float = 0.1  # cosine and wsd decay to lr·min_lr_ratio
    decay: float = 0.2  # wsd: the last fraction of the steps, over which the lr decays
    decay_shape: str = "sqrt"  # wsd: sqrt (1 − √t; Hägele et al. 2024) | linear | cosine
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    # the lr per size, by a rule (the study's tune.lrs tunes it instead):
    # none: optim.lr at every size; width: lr·base_width/width (the family's width field);
    # olmo: 0.0047·(N/108M)^(-1/3), N non-embedding parameters (OLMo ladder; Bhagia et al. 2024);
    # deepseek: 0.3118·C^(-0.125), C the point's training FLOPs (DeepSeek LLM, Bi et al. 2024)
    lr_scaling: str = "none"
    base_width: int = 64
    GROUP: ClassVar[str] = "optim"

    def __post_init__(self):
        choice(self, "name", ("adamw", "sgd"))
        choice(self, "lr_scaling", LR_RULES)
        choice(self, "schedule", ("cosine", "constant", "wsd"))
        choice(self, "decay_shape", ("sqrt", "linear", "cosine"))
        if not 0 < self.decay <= 1:
            raise ValueError(f"optim.decay is a fraction of the steps in (0, 1], got {self.decay}")
        positive(self, "lr", "base_width", "warmup_steps")
        positive(self, "weight_decay", "grad_clip", "min_lr_ratio", allow_zero=True)
        if not 0 <= self.warmup < 1:
            raise ValueError(
                f"optim.warmup is a fraction of the steps in [0, 1), got {self.warmup}"
            )


BUDGETS = {"steps": "steps", "epochs": "epochs", "tokens_per_param": "tokens_per_param",
           "flops": "target_flops"}  # fmt: skip  # trainer.budget -> the field it reads


@dataclass
class TrainerConfig:
    budget: str = "steps"  # which of the four fields below sets the training length
    steps: int | None = 500
    epochs: float | None = None  # passes over data.train_size
    tokens_per_param: float | None = None  # D = r·N examples (tokens for LM), e.g. 20
    target_flops: float | None = None  # train until this many measured FLOPs
    batch_size: int = 128  # the global batch of a step
    # the batch per size, by a rule, in tokens (examples for other tasks), rounded to sequences:
    # none: batch_size; olmo: 160·2048·(N/108M)^(2/3) (OLMo ladder); deepseek: 0.2920·C^0.3271
    # with C the point's training FLOPs (DeepSeek LLM), which needs a budget in tokens or FLOPs
    batch_scaling: str = "none"
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
    # one point as nproc processes (torchrun; DDP, or FSDP2 with fsdp=true)
    nproc: int = 1
    fsdp: bool = False  # shard parameters, gradients and optimizer state across the processes
    backend: str = "auto"  # auto (nccl on GPUs, gloo on CPU) | nccl | gloo
    # examples per process per forward pass; batch_size / (micro_batch_size·nproc) micro-batches
    # are accumulated per step. None: batch_size / nproc (no accumulation)
    micro_batch_size: int | None = None
    # a torch.profiler trace of a few steps in <point>/profile/, the top operations in the log
    profile: bool = False
    # data budgets in trainer.budget's unit, one row each, from one constant-lr trunk per point:
    # each branch cools down (optim.schedule=wsd) from the trunk at its own budget
    branches: list[float] = field(default_factory=list)
    # at this share of its steps a point forecasts its final loss from the finished points of
    # its sweep with the same schedule (forecast_* columns, and the progress display); 0: never
    forecast: float = 0.25
    # stop a point whose first forecast lies above the law through the finished points (hopeless)
    stop_hopeless: bool = False
    # points at once on each GPU under a parallel launcher (hydra/launcher=local), 1 to 8;
    # None: as many as fit in half the free memory at 20 bytes per parameter + 512 MiB
    gpu_slots: int | None = None
    # capture each training step as one CUDA graph and replay it (small models on a GPU, whose
    # steps wait on kernel launches); None: for models of up to 20M parameters. Ignored off
    # CUDA, with grad accumulation, fp16, process groups, SGD or trainer.compile
    cuda_graphs: bool | None = None
    GROUP: ClassVar[str] = "trainer"

    def __post_init__(self):
        choice(self, "budget", tuple(BUDGETS))
        choice(self, "batch_scaling", ("none", "olmo", "deepseek"))
        choice(self, "precision", ("auto", "fp32", "bf16", "fp16"))
        choice(self, "backend", ("auto", "gloo", "nccl"))
        positive(self, "steps", "epochs", "tokens_per_param", "target_flops", "batch_size",
                 "eval_interval", "early_stop_patience", "threads", "checkpoint_every",
                 "pack_seeds", "nproc", "micro_batch_size", "gpu_slots")  # fmt: skip
        if self.gpu_slots is not None and self.gpu_slots > 8:
            raise ValueError(f"trainer.gpu_slots is at most 8, got {self.gpu_slots}")
        if not 0 <= self.forecast < 1:
            raise ValueError(f"trainer.forecast is a share of the steps in [0, 1), got {self.forecast}")
        if self.stop_hopeless and (self.nproc > 1 or not self.forecast):
            raise ValueError("trainer.stop_hopeless needs trainer.forecast > 0 and one process (nproc=1)")

    @property
    def micro_batch(self) -> int:
        """Examples per process per forward pass."""
        return self.micro_batch_size or self.batch_size // self.nproc

    @property
    def grad_accum(self) -> int:
        """Micro-batches per process per optimizer step."""
        return self.batch_size // (self.micro_batch * self.nproc)

    @property
    def group(self) -> bool:
        """Whether the point runs as a process group (several processes, or one with FSDP)."""
        return self.nproc > 1 or self.fsdp


@dataclass
class LoggerConfig:
    name: str = "csv"  # csv | tensorboard | mlflow | wandb; history.csv is always written
    # mlflow: where runs go; None: $MLFLOW_TRACKING_URI, else sqlite:///<out>/mlruns.db
    tracking_uri: str | None = None
    experiment: str | None = None  # mlflow experiment, wandb project; None: the sweep's name
    GROUP: ClassVar[str] = "logger"

    def __post_init__(self):
        choice(self, "name", ("csv", "tensorboard", "mlflow", "wandb"))


@dataclass
class Config:
    model: Any = MISSING
    data: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    sweep: str = "run"  # the study's name (a preset's name)
    out: str = "outputs/run"  # the study's folder; points go to out/points/<point_id>/
    # a preset's explicit points (paired settings), each a dict of overrides
    points: list[dict[str, Any]] | None = None


def validate(cfg: Config) -> None:
    """Every rule that combines fields or groups (ValueError naming the fix)."""
    model, tr = cfg.model, cfg.trainer
    if getattr(model, "n_head", None) and model.d_model % model.n_head:
        raise ValueError(f"model.n_head={model.n_head} must divide model.d_model={model.d_model}")
    _check_budget(tr)
    _check_batches(tr)
    _check_pack(cfg)
    _check_width_rules(cfg)
    _check_studies(cfg)
    _check_branches(cfg)
    if cfg.tune.on and cfg.optim.lr_scaling != "none":
        raise ValueError(f"tune.lrs tunes the lr per size; drop optim.lr_scaling={cfg.optim.lr_scaling}")


def _check_budget(tr: TrainerConfig) -> None:
    needed = BUDGETS[tr.budget]
    if getattr(tr, needed) is None:
        raise ValueError(f"trainer.budget={tr.budget} needs trainer.{needed}")
    if tr.batch_scaling == "deepseek" and tr.budget not in ("tokens_per_param", "flops"):
        raise ValueError("trainer.batch_scaling=deepseek sets the batch from the compute budget: "
                         "use trainer.budget=tokens_per_param or flops")  # fmt: skip


def _check_batches(tr: TrainerConfig) -> None:
    if tr.batch_size % tr.nproc:
        raise ValueError(
            f"trainer.batch_size={tr.batch_size} does not split over trainer.nproc={tr.nproc}"
        )
    per_process = tr.batch_size // tr.nproc
    if tr.micro_batch_size and per_process % tr.micro_batch_size:
        raise ValueError(
            f"trainer.micro_batch_size={tr.micro_batch_size} does not divide the {per_process} "
            f"examples per process per step (batch_size={tr.batch_size}, nproc={tr.nproc})"
        )
    if tr.fsdp and tr.precision == "fp16":
        raise ValueError("trainer.fsdp does not combine with precision=fp16; use bf16")


def _check_pack(cfg: Config) -> None:
    tr = cfg.trainer
    if tr.pack_seeds == 1 and not (cfg.tune.on and cfg.tune.pack):
        return
    what = "trainer.pack_seeds" if tr.pack_seeds > 1 else "tune.pack"
    clash = [name for name, on in (
        ("early_stop_patience", tr.early_stop_patience), ("checkpoint_every", tr.checkpoint_every),
        ("precision=fp16", tr.precision == "fp16"), ("nproc", tr.nproc > 1), ("fsdp", tr.fsdp),
        ("micro_batch_size", tr.micro_batch_size),
    ) if on]  # fmt: skip
    if clash:
        raise ValueError(f"{what} does not combine with trainer.{clash[0]}")
    if not cfg.model.VMAP:
        raise ValueError(
            f"{what}: the {cfg.model.family} family cannot be vmapped (torch has no batching "
            "rule for its kernels); train its runs as separate points"
        )


def _check_branches(cfg: Config) -> None:
    """Branches share one trunk: its lr, batch and schedule must not depend on the budget."""
    tr = cfg.trainer
    if not tr.branches:
        return
    if min(tr.branches) <= 0:
        raise ValueError(f"trainer.branches are positive budgets, got {list(tr.branches)}")
    if cfg.optim.schedule != "wsd":
        raise ValueError("trainer.branches cool down from a constant-lr trunk: set optim.schedule=wsd")
    rules = [f"{k}={v}" for k, v in (("optim.lr_scaling", cfg.optim.lr_scaling),
                                     ("trainer.batch_scaling", tr.batch_scaling)) if v == "deepseek"]  # fmt: skip
    shared = [k for k, on in (("trainer.pack_seeds", tr.pack_seeds > 1), ("trainer.nproc", tr.group),
                              ("trainer.early_stop_patience", tr.early_stop_patience),
                              ("tune.lrs", cfg.tune.on)) if on]  # fmt: skip
    if rules or shared:
        raise ValueError(f"trainer.branches cannot be combined with {', '.join(rules + shared)}")


def _check_width_rules(cfg: Config) -> None:
    """μP and ``optim.lr_scaling=width`` need a family with a width."""
    family = cfg.model.family
    if cfg.optim.lr_scaling == "width" and cfg.model.WIDTH is None:
        raise ValueError(f"optim.lr_scaling=width: the {family} family has no width")
    if cfg.model.parametrization != "mup":
        return
    if not cfg.model.MUP:
        raise ValueError(f"model.parametrization=mup is implemented for mlp and transformer, "
                         f"not {family}; use model.parametrization=sp")  # fmt: skip
    if cfg.optim.lr_scaling != "none":
        raise ValueError("model.parametrization=mup sets per-layer learning rates itself; "
                         f"drop optim.lr_scaling={cfg.optim.lr_scaling}")  # fmt: skip


def _check_studies(cfg: Config) -> None:
    c, d = cfg.compress, cfg.distill
    allowed = {"quantize": ("int8",), "cast": ("bf16", "fp16")}.get(c.method)
    for level in c.levels:
        if c.method == "prune" and not (isinstance(level, (int, float)) and 0 <= level < 1):
            raise ValueError(f"compress.levels: sparsities lie in [0, 1), got {level}")
        if allowed and level not in allowed:
            raise ValueError(f"compress.levels for {c.method}: choose from {', '.join(allowed)}, "
                             f"got '{level}'")  # fmt: skip
    if c.method != "none" and not c.levels:
        raise ValueError(f"compress.method={c.method} needs compress.levels")
    if d.alpha > 0 and not (d.teacher or d.teacher_overrides):
        raise ValueError("distill.alpha > 0 needs distill.teacher or distill.teacher_overrides")
