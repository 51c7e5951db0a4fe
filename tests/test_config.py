"""DebuggingConfig without pydantic: the same settings, checks and methods, and a lighter start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import modeldebug as md
from modeldebug.config import ConfigError, DebuggingConfig, Monitoring, Thresholds
from modeldebug.errors import BadInputError


@pytest.mark.parametrize(("settings", "named"), [
    ({"analysis_level": "fast"}, "analysis_level 'fast'"),
    ({"flush_every": 0}, "flush_every must be at least 1"),
    ({"sample_every": 2.5}, "sample_every takes a whole number"),
    ({"histogram_bins": 1000}, "histogram_bins must be from 4 to 256"),
    ({"bundle_max_mb": -1}, "bundle_max_mb"),
    ({"bundle_max_mb": float("nan")}, "bundle_max_mb"),
    ({"select": "ACT"}, "select takes a list"),
    ({"monitoring": {"gradients": "no"}}, "Monitoring.gradients is a switch"),
    ({"monitoring": {"grads": False}}, "no setting 'grads'"),
    ({"thresholds": {"dead_fractoin": 0.9}}, "did you mean 'dead_fraction'"),
    ({"thresholds": {"dead_fraction": "most"}}, "dead_fraction takes a number"),
    ({"thresholds": 0.9}, "thresholds takes a Thresholds or a dict"),
])
def test_a_bad_setting_is_one_error_naming_it(settings: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        DebuggingConfig(**settings)
    # what code written against the pydantic model caught, and what the CLI turns into exit code 2
    assert isinstance(info.value, ValueError) and isinstance(info.value, BadInputError)


def test_settings_are_converted_and_copies_are_checked_too() -> None:
    config = DebuggingConfig(sample_every=10.0, bundle_max_mb=5, thresholds={"dead_fraction": 1}, select=("ACT",))
    assert config.sample_every == 10 and isinstance(config.sample_every, int)
    assert config.bundle_max_mb == 5.0 and isinstance(config.bundle_max_mb, float)
    assert config.thresholds.dead_fraction == 1.0 and isinstance(config.thresholds.dead_fraction, float)
    assert config.select == ["ACT"]
    copy = config.model_copy(update={"analysis_level": "detailed", "select": []})
    assert (copy.analysis_level, copy.select, config.analysis_level, config.select) == ("detailed", [], "basic", ["ACT"])
    with pytest.raises(ConfigError, match="analysis_level"):
        config.model_copy(update={"analysis_level": "everything"})
    with pytest.raises(ConfigError, match="no setting 'level'"):
        config.model_copy(update={"level": "basic"})
    with pytest.raises(ConfigError, match="grad_growth takes a number"):
        config.thresholds.grad_growth = "big"
    config.thresholds.grad_growth = 50
    assert config.thresholds.grad_growth == 50.0 and config.thresholds.model_extra == {"dead_fraction": 1.0,
                                                                                       "grad_growth": 50.0}


def test_the_stored_config_is_json_and_loads_back_equal() -> None:
    config = DebuggingConfig(analysis_level="detailed", monitoring=Monitoring(memory=False),
                             thresholds={"vanishing_ratio": 1e-9}, ignore=["PRF"])
    stored = json.loads(json.dumps(config.model_dump(mode="json")))
    assert stored["thresholds"]["vanishing_ratio"] == 1e-9
    assert stored["thresholds"]["dead_fraction"] == Thresholds().dead_fraction  # defaults are stored too
    assert set(stored["thresholds"]) == set(Thresholds.model_fields)
    assert DebuggingConfig.model_validate(stored) == config
    assert DebuggingConfig.model_validate(stored) != DebuggingConfig()
    with pytest.raises(ConfigError, match="no setting 'colour'"):
        DebuggingConfig.model_validate({**stored, "colour": "red"})
    with pytest.raises(ConfigError, match="expected a dict"):
        DebuggingConfig.model_validate(["basic"])


def test_the_public_name_is_the_same_class() -> None:
    assert md.DebuggingConfig is DebuggingConfig


def test_running_a_script_does_not_load_pydantic_before_its_first_line(tmp_path) -> None:
    """What `modeldebug run` imports before the script (issue 17: start-up): pydantic took 0.18 s of CPU."""
    script = tmp_path / "first.py"
    script.write_text("import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n")
    out = subprocess.run([sys.executable, "-m", "modeldebug", "run", "--db", str(tmp_path / "r.db"), str(script)],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.stdout.strip().splitlines()[0] == "[]"
