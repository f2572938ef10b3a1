"""The recipe: options, pinned sample recipes, task inference (no EZKL build)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tender.models import RECIPE, BundleError, Recipe, cli_group
from tender.models._recipe import RECIPE_FILE, infer_task
from tender.paths import SAMPLE_MODELS
from tests.harness import zoo


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_sample_models_pin_the_first_recipe(name: str) -> None:
    """Their cache key material is what it always was: same bundles, model ids and gas."""
    recipe = Recipe.for_model(SAMPLE_MODELS / name / "model.onnx")
    assert recipe.scale == 7
    assert recipe.scale_rebase_multiplier is None
    assert recipe.key_material() == RECIPE
    # an option overrides the pin, and so the key
    assert Recipe.for_model(SAMPLE_MODELS / name / "model.onnx", scale=9).key_material() != RECIPE


def test_new_models_get_the_accuracy_default(tmp_path: Path) -> None:
    recipe = Recipe.for_model(tmp_path / "model.onnx")
    assert (recipe.target, recipe.scale, recipe.max_logrows, recipe.scale_rebase_multiplier) == (
        "accuracy",
        None,
        15,
        1,
    )
    assert recipe.candidates() == (7, 8, 9, 10, 11, 12, 13)
    assert recipe.key_material() != Recipe(target="resources").key_material()
    (tmp_path / RECIPE_FILE).write_text(json.dumps({"max_logrows": 15, "task": "regress"}))
    pinned = Recipe.for_model(tmp_path / "model.onnx", target="resources")
    assert (pinned.target, pinned.max_logrows, pinned.task) == ("resources", 15, "regress")
    (tmp_path / RECIPE_FILE).write_text(json.dumps({"scales": [7]}))
    with pytest.raises(BundleError, match="is not a recipe"):
        Recipe.for_model(tmp_path / "model.onnx")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"target": "speed"}, "target must be one of accuracy, resources"),
        ({"task": "rank"}, "task must be one of classify, regress"),
        ({"max_logrows": 40}, "max_logrows must be between"),
        ({"scale": -1}, "scale must be between"),
    ],
)
def test_bad_recipe_fields_are_refused(fields: dict[str, object], match: str) -> None:
    with pytest.raises(BundleError, match=match):
        Recipe(**fields)  # type: ignore[arg-type]


def test_task_is_inferred_from_a_final_softmax(tmp_path: Path) -> None:
    assert infer_task(zoo.softmax(tmp_path / "softmax"), meta_accuracy=None) == "classify"
    assert (
        infer_task(zoo.sklearn_mlp(tmp_path / "skl"), meta_accuracy=None) == "classify"
    )  # Softmax, Identity
    assert infer_task(zoo.pooling(tmp_path / "pool"), meta_accuracy=None) == "regress"
    assert infer_task(zoo.convnet(tmp_path / "conv"), meta_accuracy=None) == "regress"  # logits: say --task
    assert infer_task(SAMPLE_MODELS / "mlp" / "model.onnx", meta_accuracy=0.97) == "classify"


def test_cli_refuses_bad_options_naming_them(tmp_path: Path) -> None:
    onnx = zoo.softmax(tmp_path / "softmax")
    runner = CliRunner()
    base = ["build", str(onnx), "--calibration", str(onnx.parent / "calibration.json")]
    for option, value in (
        ("--target", "speed"),
        ("--max-logrows", "40"),
        ("--task", "rank"),
        ("--scale", "x"),
    ):
        result = runner.invoke(cli_group, [*base, option, value])
        assert result.exit_code == 2
        assert option in result.output
