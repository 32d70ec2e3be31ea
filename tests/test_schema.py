"""Each setting is declared once: the config schema (``alexlab.config.schema``). For every group,
its YAML, its schema and its constructor's signature agree on every key and every default."""

import inspect
from dataclasses import MISSING, fields

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_object
from omegaconf import OmegaConf

from alexlab.config import CONF_DIR, ConfigError, validate_section
from alexlab.config.schema import CALLBACKS, SCHEMAS, Top

# The option that lists every key of its schema, with the schema's default as its value (the
# others extend it or, for optimizers and schedules, set a published recipe's values).
BASES = {
    ("model", "alexnet"),
    ("data", "folder"),
    ("data", "cifar10"),
    ("data", "synthetic"),
    ("data.source", "folder"),
    ("data.source", "digits"),
    ("module", "classification"),
    ("trainer", "default"),
    ("strategy", "ddp"),
    ("strategy", "single"),
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group.replace(".", "/")).glob("*.yaml"))


def composed(group: str, option: str) -> dict:
    """The option's keys as Hydra composes them (its defaults list applied), unresolved."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"{group.replace('.', '/')}={option}"])
    return OmegaConf.to_container(OmegaConf.select(cfg, group), resolve=False)


def parameters(target: str) -> dict[str, object]:
    """The constructor's keyword arguments and defaults (``inspect.Parameter.empty``: none);
    ``**kwargs`` followed to where they go."""
    if target == "builtins.str":
        return {"object": inspect.Parameter.empty}
    params = dict(inspect.signature(get_object(target)).parameters)
    found = {n: p.default for n, p in params.items() if p.kind != p.VAR_KEYWORD}
    forwarded = {  # where a constructor's **kwargs go
        "alexlab.models.alexnet.build": "alexlab.models.alexnet.AlexNet",
        "alexlab.optim.schedules.warmup_lr_scheduler": "alexlab.optim.schedules.WarmupSchedule",
        "lightning.pytorch.strategies.DDPStrategy": "torch.nn.parallel.DistributedDataParallel",
    }
    if target in forwarded:
        found |= {n: d for n, d in parameters(forwarded[target]).items() if n not in found}
    if target == "alexlab.data.datamodule.ImageDataModule":  # **augment: Augment's fields
        from alexlab.data.augment import Augment

        found |= {
            f.name: f.default if f.default is not MISSING else inspect.Parameter.empty
            for f in fields(Augment)
        }
    return found


def same(a: object, b: object) -> bool:
    """Equal, a tuple default and a YAML list alike."""
    return [a] == [b] if not isinstance(a, tuple | list) else list(a) == list(b or [])


CASES = [(g, o) for g in SCHEMAS for o in options(g)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_yaml_schema_and_signature_agree(group, option):
    node = composed(group, option)
    target = node["_target_"]
    schema = SCHEMAS[group][target]
    params = parameters(target)
    keys = {k for k in node if not k.startswith("_") and k != "source"}  # data.source: its own
    assert keys <= set(schema.model_fields), f"{group}={option}: keys without a schema field"
    assert set(schema.model_fields) <= set(params), f"{target} takes no argument of that name"
    for name, field in schema.model_fields.items():
        default = params[name]
        if target.startswith("alexlab.") and default is not inspect.Parameter.empty:
            assert same(field.default, default), (f"{group}.{name}", field.default, default)
    if (group, option) in BASES:
        assert keys == set(schema.model_fields), f"{group}={option} lists every setting"
        for name in keys:
            value = node[name]
            if not (isinstance(value, str) and value.startswith("${")):  # interpolations aside
                assert same(value, schema.model_fields[name].default), (f"{group}.{name}", value)


@pytest.mark.parametrize(
    "schema",
    [s for tables in SCHEMAS.values() for s in tables.values()] + [*CALLBACKS.values(), Top],
)
def test_every_setting_has_a_one_line_doc(schema):
    for name, field in schema.model_fields.items():
        assert field.description and "\n" not in field.description, name


def test_the_schema_is_the_one_gate_for_checkpoint_settings():
    """``validate_section`` checks what a checkpoint stored with the same rules as the CLI."""
    stored = {"_target_": "alexlab.models.alexnet.build", "widths": [8, 16, 16, 16, 16]}
    assert validate_section("model", stored) == {"widths": [8, 16, 16, 16, 16]}
    with pytest.raises(ConfigError, match=r"^run_config.model.norm=gn is not allowed: .* lrn"):
        validate_section("model", {"norm": "gn"}, prefix="run_config.model")
    with pytest.raises(ConfigError, match="run_config.model.colour is not a key"):
        validate_section("model", {"colour": 1}, prefix="run_config.model")
    data = {"image_size": 64, "resize_size": 64, "loader": "anything"}
    assert validate_section("data", data, only=("image_size",)) == {"image_size": 64}
