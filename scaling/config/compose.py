"""From presets and overrides to validated points: the only code that reads override strings.

``scale sweep`` expands a grid itself with Hydra's basic-sweeper rules (comma lists,
``range()``, a preset's ``hydra.sweeper.params``, plus its explicit ``points``), and
composes each point with Hydra's compose API. ``compose`` applies ``model.size``, builds
the typed ``Config`` (each dataclass's own checks) and runs ``schema.validate``: a point
comes out of here checked, or a one-line ``BadInput`` does.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
from importlib.resources import files
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..data import SOURCES
from ..errors import BadInput
from ..models import FAMILIES, size_fields
from .presets import preset_overrides
from .schema import (
    CompressConfig,
    Config,
    LoggerConfig,
    OptimConfig,
    TrainerConfig,
    validate,
)

CONFIG_NAME = "config"
_COMPOSE_ERRORS = (ConfigCompositionException, MissingConfigException, OmegaConfBaseException)


def conf_dir() -> Path:
    return Path(str(files("scaling.conf")))


def groups() -> dict[str, dict]:
    """Every config group's options and their dataclasses; the models' and data sets' come
    from their registries, so a new family or source needs no line here."""
    return {
        "model": {name: fam.Config for name, fam in FAMILIES.items()},
        "data": {name: src.Config for name, src in SOURCES.items()},
        "optim": {"adamw": OptimConfig, "sgd": OptimConfig},
        "trainer": {"default": TrainerConfig},
        "logger": {n: LoggerConfig for n in ("csv", "tensorboard", "mlflow", "wandb")},
        "compress": {m: CompressConfig for m in ("none", "prune", "quantize", "cast")},
    }


def register() -> None:
    """Every schema into Hydra's ConfigStore, as ``<group>/<name>_schema``; an option without a
    YAML file of its own (nothing to change from its defaults) as ``<group>/<name>`` too."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, options in groups().items():
        for name, node in options.items():
            cs.store(group=group, name=f"{name}_schema", node=node)
            if not (conf_dir() / group / f"{name}.yaml").is_file():
                cs.store(group=group, name=name, node=node)


register()


_depth = 0  # hydra_context blocks open: inner ones use the outer one's Hydra


@contextlib.contextmanager
def hydra_context():
    """Hydra initialised with the package's configs (re-entrant)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield GlobalHydra.instance().hydra
        finally:
            _depth -= 1
        return
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base=None):
        _depth = 1
        try:
            yield GlobalHydra.instance().hydra
        finally:
            _depth = 0


# ---------------------------------------------------------------- override strings


def key_of(override: str) -> str:
    """The key an override sets: ``+model.width=8`` → ``model.width``."""
    return override.split("=", 1)[0].lstrip("+~")


def is_hydra(override: str) -> bool:
    return key_of(override).startswith("hydra")


def label(point: list[str], varying: set[str]) -> str:
    """A short name for a point: the settings that differ between points, keys without group."""

    def short(value: str) -> str:
        try:
            return f"{float(value):g}" if "." in value or "e" in value.lower() else value
        except ValueError:
            return value

    parts = [o.split("=", 1) for o in point if key_of(o) in varying]
    return " ".join(f"{key.split('.')[-1]}={short(value)}" for key, value in parts) or "default"


def varying_keys(grid: list[list[str]]) -> set[str]:
    """The keys whose values differ between the points of a grid (every key of a one-point grid)."""
    settings: dict[str, set] = {}
    for point in grid:
        for o in point:
            settings.setdefault(key_of(o), set()).add(o.partition("=")[2])
    return {k for k, values in settings.items() if len(values) > 1 or len(grid) == 1}


def without(point: list[str], keys: tuple[str, ...]) -> list[str]:
    return [o for o in point if key_of(o) not in keys]


def _parse(overrides: list[str]):
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception as e:  # noqa: BLE001 - the parser's own error says what is wrong
        raise BadInput(f"bad override: {str(e).splitlines()[0]}") from None


def _combinations(overrides: list[str]) -> list[list[str]]:
    """Every combination of the sweep values in ``overrides``, by Hydra's basic sweeper's
    rules: a later setting of a key replaces an earlier one; comma lists and ``range()``
    multiply; interval and choice sweeps (for optimising sweepers) are refused."""
    lists: dict[str, list[str]] = {}
    for override in _parse(overrides):
        key = override.get_key_element()
        if not override.is_sweep_override():
            lists[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            lists[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise BadInput(
                f"{key}: the basic sweeper takes comma lists and range(), not {override.value_type.name}"
            )
    return [list(x) for x in itertools.product(*lists.values())]


def expand(preset: Path | None, overrides: list[str]) -> tuple[list[list[str]], list[str], object]:
    """The grid's points as lists of overrides, the overrides that configure Hydra itself,
    and the sweep's composed config (with its ``hydra`` node: the launcher's settings).

    Must run inside ``hydra_context()``.
    """
    hydra_over = [o for o in overrides if is_hydra(o)]
    point_over = [o for o in overrides if not is_hydra(o)]
    try:
        master = hydra_compose(CONFIG_NAME, overrides=preset_overrides(preset) + hydra_over,
                               return_hydra_config=True)  # fmt: skip
    except _COMPOSE_ERRORS as e:
        raise BadInput(explain(e, preset_overrides(preset) + hydra_over)) from None
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
    grid = _combinations(params + point_over)
    explicit = OmegaConf.to_container(master.points) if master.get("points") else []
    if explicit:
        # explicit points (paired settings) combine with the command line, not with the grid
        base = _combinations(point_over)
        pairs = [b + [f"{k}={v}" for k, v in p.items()] for p in explicit for b in base]
        grid = pairs + (grid if params else [])
    return grid, hydra_over, master


def to_container(node) -> dict:
    """A node of Hydra's own config as a plain dict (unresolved)."""
    return (OmegaConf.to_container(node, resolve=False) if node is not None else None) or {}


# ---------------------------------------------------------------- one point


def compose(point: list[str] = (), preset: Path | None = None, extra: list[str] = ()) -> Config:
    """Compose one point from overrides (and a preset), apply ``model.size`` and validate it.

    Returns the typed ``Config``; a bad point raises ``BadInput``.
    """
    with hydra_context():
        try:
            cfg = hydra_compose(
                CONFIG_NAME, overrides=preset_overrides(preset) + list(extra) + list(point)
            )
        except OverrideParseException as e:
            raise BadInput(f"bad override: {str(e).splitlines()[0]}") from None
        except _COMPOSE_ERRORS as e:
            raise BadInput(explain(e, preset_overrides(preset) + list(extra) + list(point))) from None
    return typed(cfg, point)


def typed(cfg, overrides: list[str] = ()) -> Config:
    """The composed config with ``model.size`` applied, as the typed ``Config``, checked: each
    dataclass's own checks and ``schema.validate``."""
    try:
        derived = size_fields(cfg.model)
        given = {key_of(o) for o in overrides}
        clash = sorted(f"model.{k}" for k in derived if f"model.{k}" in given)
        if clash:
            raise BadInput(f"model.size sets {', '.join(clash)}; give one or the other")
        for key, value in derived.items():
            cfg.model[key] = value
        for group, key in (("model", "family"), ("data", "name")):
            schema = getattr(OmegaConf.get_type(cfg[group]), key, None)
            if isinstance(schema, str) and cfg[group][key] != schema:
                raise BadInput(f"{group}.{key}={cfg[group][key]} keeps the {schema} settings; "
                               f"choose the config group instead: {group}={cfg[group][key]}")  # fmt: skip
        obj = OmegaConf.to_object(cfg)  # runs every dataclass's own checks
        validate(obj)
    except (ValueError, OmegaConfBaseException) as e:
        if isinstance(e, BadInput):
            raise
        raise BadInput(str(e).splitlines()[0]) from None
    return obj


def teacher_config(student: Config) -> Config:
    """A student's teacher: its config with ``distill.teacher_overrides`` applied and the study's
    parts off (no distillation, no compression, no packing, the model saved)."""
    node = OmegaConf.structured(student)
    overrides = list(student.distill.teacher_overrides)
    try:
        for override in _parse(overrides):
            OmegaConf.update(node, override.key_or_group, override.value(), merge=False)
    except OmegaConfBaseException as e:
        raise BadInput(f"distill.teacher_overrides: {str(e).splitlines()[0]}") from None
    node.distill.alpha, node.distill.teacher_overrides = 0.0, None
    node.trainer.save_model, node.trainer.pack_seeds = True, 1
    node.compress.method, node.compress.levels = "none", []
    return typed(node, overrides)


# ---------------------------------------------------------------- errors

# Hydra's launcher plugins that conf/hydra/launcher's configs extend, and the extra with each
PLUGIN_EXTRAS = {"joblib": "joblib", "submitit_slurm": "slurm", "submitit_local": "slurm"}


def _valid_keys(key: str, overrides=()) -> list[str]:
    """The keys beside ``key``'s last part, in the config that ``overrides``' group choices
    (model=rnn, a preset's defaults) compose."""
    key_of = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    groups = [o for o in overrides if "." not in key_of(o) or key_of(o).startswith("hydra.")]
    node = hydra_compose(CONFIG_NAME, overrides=groups)
    for part in key.split(".")[:-1]:
        node = node.get(part) if hasattr(node, "get") else None
        if node is None:
            return []
    return list(node.keys()) if hasattr(node, "keys") else []


def explain(error: Exception, overrides=()) -> str:
    """One line for a Hydra or OmegaConf composition error of ``overrides``."""
    if isinstance(error, MissingConfigException):
        group, _, wanted = (error.missing_cfg_file or "").rpartition("/")
        options = [o for o in (error.options or []) if not o.endswith("_schema")]
        if group == "sweeps":
            return f"unknown sweep preset '{wanted}'"
        if group == "hydra/launcher" and wanted in PLUGIN_EXTRAS:  # ours build on Hydra's plugins
            return (f"this launcher needs Hydra's {wanted} launcher plugin: "
                    f'pip install "scaling[{PLUGIN_EXTRAS[wanted]}]"')  # fmt: skip
        return f"unknown {group} '{wanted}'; choose from: {', '.join(options)}"
    cause = error.__cause__ or error
    text = str(error).splitlines()[0]
    detail = str(cause).splitlines()[0] if cause is not error else ""
    if "Could not override" in text or "not in struct" in detail or "Could not append" in text:
        key = text.split("'")[1] if "'" in text else ""
        with contextlib.suppress(Exception):
            valid = _valid_keys(key, overrides)
            if valid:
                near = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
                near = [n for n in near if n != key.split(".")[-1]]
                hint = f" (did you mean '{'.'.join(key.split('.')[:-1] + near)}'?)" if near else ""
                where = key.rsplit(".", 1)[0] if "." in key else "the config"
                return f"unknown key '{key}'{hint}; {where} has: {', '.join(valid)}"
        return f"unknown key '{key}'"
    if "Ambiguous value" in text:
        return f"{text}: comma lists and range() are for `scale sweep`"
    if detail and detail != text:
        return f"{text}: {detail}"
    return text
