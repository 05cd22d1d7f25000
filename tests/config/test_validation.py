"""Config validation: unknown keys and bad values fail early, naming the key and what is allowed."""

from __future__ import annotations

import pytest
from conftest import config_of
from programs import run_programs

from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.core.errors import ConfigError
from jaxtl.data import registry


def test_shipped_config_is_valid():
    configuration.validate(config_of("eyepacs"))


@pytest.mark.parametrize("key, value, message", [
    ("optim.name", "sgdd",
     "config.optim.name is 'sgdd'; allowed values: sgd, adam, adamw, cool_momentum"),
    ("model.arch", "resnet5", "config.model.arch is 'resnet5'; allowed values: "),
    ("model.head", "mlp", "allowed values: linear, mlp_128, mlp_512_256_128_64"),
    ("model.dtype", "float16", "allowed values: float32, bfloat16"),
    ("optim.schedule", "cosine", "allowed values: flat, gradual, sudden"),
    ("data.augment", "crop,blur", "expected 'none' or a comma list of crop, flip, rotate"),
    ("data.batch_size", 0, "config.data.batch_size is 0; expected an integer in 1 .. inf"),
    ("data.train_per_class", 0, "expected an integer in 1 .. inf (or -1)"),
    ("optim.lr", -0.1, "config.optim.lr is -0.1; expected a number"),
    ("data.val_fraction", 0.95, "config.data.val_fraction is 0.95; expected a number in 0.0 .. 0.9"),
    ("optim.decay_epochs", (20, 10), "the epochs must be in ascending order"),
    ("eval.best_metric", "auroc", "allowed values for eyepacs: kappa, accuracy"),
    ("data.randaugment", "rand-m9-mstd0.5", ("config.data.randaugment is 'rand-m9-mstd0.5'; "
                                             "jaxtl implements timm's increasing op set only: "
                                             "add '-inc1'")),
    ("data.randaugment", "rand-m9-q2-inc1", "unknown field 'q2'"),
    ("data.random_erasing", 1.5, "config.data.random_erasing is 1.5; expected a number"),
    ("train.mixup_alpha", -1.0, "config.train.mixup_alpha is -1.0; expected a number"),
])
def test_invalid_value_names_key_and_allowed_values(key, value, message):
    config = config_of("eyepacs")
    section, name = key.split(".")
    with config.unlocked():
        config[section][name] = value
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    assert message in str(error.value)


def test_unknown_and_missing_keys_are_reported_together():
    config = config_of("eyepacs")
    with config.unlocked():
        config.optim.lrr = 0.1
        del config.train["seed"]
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    assert "config.optim.lrr is not a known setting" in str(error.value)
    assert "config.train.seed is missing" in str(error.value)


def test_segmentation_refuses_the_device_augmentations():
    config = config_of("consep_seg")
    config.train.mixup_alpha, config.data.randaugment = 0.8, "rand-m9-mstd0.5-inc1"
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    assert ("config.data.randaugment is 'rand-m9-mstd0.5-inc1', config.train.mixup_alpha is "
            "0.8, but consep_seg is a segmentation dataset") in str(error.value)
    assert "\n" not in str(error.value)


def test_randaugment_takes_grey_or_rgb_images():
    config = config_of("bigearthnet")  # Sentinel-2 bands
    config.data.randaugment = "rand-m9-mstd0.5-inc1"
    with pytest.raises(ConfigError, match="take grey \\(1\\) or RGB \\(3\\) images"):
        configuration.validate(config)
    config = config_of("eyepacs")
    config.data.randaugment = "rand-m9-mstd0.5-inc1"
    config.data.channels, config.data.mean, config.data.std = 1, (0.5,), (0.25,)
    configuration.validate(config)


def test_fractions_must_leave_training_patients():
    config = config_of("eyepacs")
    config.data.val_fraction, config.data.test_fraction = 0.5, 0.5
    with pytest.raises(ConfigError, match="must be below 1"):
        configuration.validate(config)


def test_parse_augment():
    assert configuration.parse_augment("none") == ()
    assert configuration.parse_augment("crop, flip") == ("crop", "flip")


def run_main(tmp_path, *overrides):
    (run,) = run_programs([("jaxtl.main", ["--config", "configs/eyepacs.py",
                                           "--workdir", str(tmp_path / "run"), *overrides])],
                          timeout=120)
    return run


def test_command_line_bad_value_fails_before_anything_runs(tmp_path):
    result = run_main(tmp_path, "--config.optim.name=sgdd",
                      f"--config.data.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 2
    assert "config.optim.name is 'sgdd'; allowed values: sgd, adam, adamw" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_command_line_unknown_key_is_rejected(tmp_path):
    result = run_main(tmp_path, "--config.optim.lrr=0.1")
    assert result.returncode != 0
    assert "lrr" in result.stderr and not (tmp_path / "run").exists()


def test_command_line_override_reaches_the_config(tmp_path):
    result = run_main(tmp_path, "--config.optim.lr=-0.5", "--config.optim.name=adam")
    assert result.returncode == 2
    assert "config.optim.lr is -0.5; expected a number" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_no_folder_to_pin_the_workdir_config(tmp_path):
    # the data root is checked after the config is accepted and the run folder made: a refused
    # run removes what it made, so the next command with another config is not refused for it
    for missing in ("missing", "missing-too"):
        result = run_main(tmp_path, "--config.data.root=" + str(tmp_path / missing))
        assert result.returncode == 2
        assert "does not exist; set --config.data.root" in result.stderr
        assert "holds a run with a different config" not in result.stderr
        assert not (tmp_path / "run").exists()


def test_an_unknown_key_names_the_closest_known_one():
    config = config_of("eyepacs")
    with config.unlocked():
        config.optim.lrr = 0.1
        config.eyepacs.preproces = "graham"
        config.data.zzz = 1
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    message = str(error.value)
    assert "config.optim.lrr is not a known setting; did you mean optim.lr?" in message
    assert ("config.eyepacs.preproces is not a known setting; did you mean "
            "eyepacs.preprocess?") in message
    assert ("config.data.zzz is not a known setting; remove it (python -m "
            "jaxtl.commands.settings --config FILE lists the settings)") in message


def test_command_line_unknown_key_names_the_closest_known_one(tmp_path):
    runs = run_programs([
        ("jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(tmp_path / "run"),
                        "--config.optim.lrr=0.1"]),
        ("jaxtl.commands.stats", ["--config", "configs/chexpert.py",
                                  "--config.chest.veiw=ap"]),
        ("jaxtl.commands.stats", ["--config", "configs/eyepacs.py", "--config.qqq.zzz=1"]),
    ])
    assert [run.returncode for run in runs] == [2, 2, 2]
    assert not any(run.traceback for run in runs)
    assert runs[0].stderr.strip().endswith(
        "error: --config.optim.lrr=0.1: config.optim.lrr is not a known setting; did you "
        "mean optim.lr?")
    assert ("--config.chest.veiw=ap: config.chest.veiw is not a known setting; did you mean "
            "chest.view?") in runs[1].stderr
    assert "config.qqq.zzz is not a known setting; remove it" in runs[2].stderr
    assert not (tmp_path / "run").exists()


def test_a_demo_run_refuses_an_invalid_value_it_would_replace():
    """Validation runs once, on the final config; a value the demo replaces is checked by
    its rule before it goes."""
    config = config_of("eyepacs")
    config.model.arch = "resnet5"
    with pytest.raises(ConfigError, match="config.model.arch is 'resnet5'; allowed values: "):
        demo.apply(config)
    assert config.model.arch == "resnet5"  # nothing replaced


def test_validate_returns_the_spec_it_resolved():
    config = config_of("eyepacs")
    assert configuration.validate(config) is registry.get("eyepacs")
    assert configuration.dataset_spec(config) is registry.get("eyepacs")
    config.dataset = "no_such_dataset"
    with pytest.raises(ConfigError, match="invalid config: config.dataset is "
                                          "'no_such_dataset': neither a built-in dataset"):
        configuration.validate(config)


@pytest.mark.parametrize("name, location", [("bigearthnet", "data.root"),
                                            ("tfds:bigearthnet/all", "data.tfds_dir")])
def test_a_split_dir_without_data_names_the_datasets_location_key(name, location):
    config = config_of(name)
    config.bigearthnet.split_dir = "/splits"
    with pytest.raises(ConfigError, match=f"bigearthnet.split_dir is set but {location} is "
                                          f"empty: the demo data bring their own split"):
        configuration.validate(config)
    section, key = location.split(".")
    config[section][key] = "/data"
    try:
        configuration.validate(config)
    except ConfigError as error:  # e.g. tensorflow-datasets is not installed
        assert "split_dir" not in str(error)
