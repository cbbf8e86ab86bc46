"""The recipe schema: every shipped recipe loads; every mistake names its key and file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.errors import RecipeError
from conveyor.recipe import Recipe, Task, load_recipe, parse_override
from testbed.opt_in import missing_opt_in_base, shipped_recipe_params
from testbed.paths import DATA_DIR, RECIPES_DIR

pytestmark = pytest.mark.unit

SHIPPED = sorted(RECIPES_DIR.glob("*.yaml"))
DEMO = RECIPES_DIR / "clinc150-minilm.yaml"


def _write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    """A recipe in tmp_path with CLINC's real splits copied beside it."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for split in ("train", "validation", "test"):
        shutil.copy(DATA_DIR / "clinc150" / f"{split}.jsonl", data / f"{split}.jsonl")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


VALID = """\
name: demo
task: classification
data:
  train: data/train.jsonl
  validation: data/validation.jsonl
  test: data/test.jsonl
model:
  base: minilm
"""


def _problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides or [])
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


@pytest.mark.parametrize("path", shipped_recipe_params(SHIPPED))
def test_every_shipped_recipe_loads_and_its_files_exist(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    for split_path in recipe.data.splits().values():
        assert split_path.is_absolute() and split_path.is_file()


def test_shipped_recipes_cover_every_dataset_and_both_tasks() -> None:
    recipes = [load_recipe(p) for p in SHIPPED if not missing_opt_in_base(p)]
    used = {r.data.train.parent.name for r in recipes}
    # every folder of training splits (the arrival trace beside them is for load replays)
    assert used == {p.parent.name for p in DATA_DIR.glob("*/train.jsonl")}
    assert {p.name for p in DATA_DIR.iterdir() if p.is_dir()} - used == {"azure_llm_trace_2023"}
    assert "crosswoz_nlg" in used
    assert {r.task for r in recipes} == {Task.CLASSIFICATION, Task.CAUSAL_LM}


def test_demo_recipe_is_clinc_on_minilm() -> None:
    recipe = load_recipe(DEMO)
    assert (recipe.name, recipe.model.base, recipe.task) == (
        "clinc150-minilm",
        "minilm",
        Task.CLASSIFICATION,
    )


def test_paths_resolve_relative_to_the_recipe_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, VALID)
    monkeypatch.chdir("/")
    recipe = load_recipe(path)
    assert recipe.data.train == (tmp_path / "data" / "train.jsonl").resolve()


def test_misspelt_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "training:\n  max_stpes: 3\n")
    assert _problems(path) == ["training.max_stpes: unknown key (did you mean 'max_steps'?)"]


def test_unknown_top_level_key_lists_known_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "servng: {}\n")
    (problem,) = _problems(path)
    assert problem.startswith("servng: unknown key (did you mean 'serving'?)")


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "training:\n  lr: fast\n")
    (problem,) = _problems(path)
    assert problem.startswith("training.lr: ") and "'fast'" in problem


def test_out_of_range_value_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "training:\n  zero_stage: 4\n")
    (problem,) = _problems(path)
    assert problem.startswith("training.zero_stage: ") and "3" in problem


def test_missing_required_keys_are_each_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: demo\ntask: classification\n")
    assert set(_problems(path)) == {
        "data: required key is missing",
        "model: required key is missing",
    }


def test_missing_data_file_names_split_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("data/test.jsonl", "data/nope.jsonl"))
    (problem,) = _problems(path)
    assert problem == f"data.test: file not found: {tmp_path / 'data' / 'nope.jsonl'}"


def test_unsupported_data_format_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("data/test.jsonl", "data/test.txt"))
    (tmp_path / "data" / "test.txt").write_text("hello\n")
    (problem,) = _problems(path)
    assert problem.startswith("data.test: unsupported format '.txt'")


def test_model_base_folder_must_be_a_model(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    path = _write(tmp_path, VALID.replace("base: minilm", "base: ./not-a-model"))
    (problem,) = _problems(path)
    assert "model.base" in problem and "config.json" in problem
    path = _write(tmp_path, VALID.replace("base: minilm", "base: ./missing-model"))
    (problem,) = _problems(path)
    assert problem.startswith("model.base: no model folder at")


def test_hub_id_is_accepted_as_a_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("base: minilm", "base: bert-base-uncased"))
    assert load_recipe(path).model.base == "bert-base-uncased"


def test_task_rules_are_enforced(tmp_path: Path) -> None:
    causal = VALID.replace("task: classification", "task: causal-lm")
    path = _write(tmp_path, causal)
    problems = _problems(path)
    assert problems == ["data.label_field: must be null when task is causal-lm"]
    path = _write(tmp_path, VALID.replace("  test: data/test.jsonl\n", ""))
    assert _problems(path) == ["data.test: required when task is classification"]


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: demo\ntask: [classification\n")
    (problem,) = _problems(path)
    assert problem.startswith("line ") and "invalid YAML" in problem


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert _problems(_write(tmp_path, "")) == ["the file is empty"]
    assert _problems(_write(tmp_path, "- a\n- b\n"))[0].startswith("top level must be a mapping")
    assert _problems(tmp_path / "absent.yaml") == ["recipe file not found"]


def test_cpu_processes_and_gpus_are_not_mixed(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    assert load_recipe(path, ["training.processes=2"]).training.processes == 2
    (problem,) = _problems(path, ["training.processes=2", "training.gpus=2"])
    assert problem.startswith("training") and "processes" in problem and "gpus 0" in problem


def test_overrides_reach_the_recipe_typed() -> None:
    recipe = load_recipe(
        DEMO,
        [
            "training.max_steps=50",
            "training.lr=3e-5",
            "serving.rollback.max_error_rate=0.2",
            "gates.require_significant_gain=true",
            "training.deepspeed={gradient_clipping: 0.5}",
        ],
    )
    assert recipe.training.max_steps == 50
    assert recipe.training.lr == pytest.approx(3e-5)
    assert recipe.serving.rollback.max_error_rate == pytest.approx(0.2)
    assert recipe.gates.require_significant_gain is True
    assert recipe.training.deepspeed == {"gradient_clipping": 0.5}
    assert load_recipe(DEMO).training.max_steps is None  # the file is untouched


def test_override_of_data_path_is_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA_DIR / "sms_spam")
    recipe = load_recipe(DEMO, ["data.test=test.jsonl"])
    assert recipe.data.test == (DATA_DIR / "sms_spam" / "test.jsonl").resolve()


def test_bad_overrides_are_named() -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(DEMO, ["training.max_stpes=5"])
    assert caught.value.problems == [
        "training.max_stpes: unknown key (did you mean 'max_steps'?) [set by --set]"
    ]
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(DEMO, ["training.max_steps"])
    with pytest.raises(RecipeError, match="name is a value, not a section"):
        load_recipe(DEMO, ["name.x=1"])


def test_parse_override_types_values_as_yaml() -> None:
    assert parse_override("a.b=50") == (["a", "b"], 50)
    assert parse_override("a=null") == (["a"], None)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=x=y") == (["a"], "x=y")


def test_recipe_is_immutable_and_round_trips_as_json() -> None:
    recipe = load_recipe(DEMO)
    with pytest.raises(ValueError):
        recipe.name = "other"  # type: ignore[misc]
    assert Recipe.model_validate(recipe.model_dump(mode="json")) == recipe


def test_a_capture_redact_pattern_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    capture = "serving:\n  capture:\n    enabled: true\n    redact: ['order-\\d+', '(unclosed']\n"
    path = _write(tmp_path, VALID + capture)
    (problem,) = _problems(path)
    assert problem.startswith("serving.capture.redact: ") and "redact[1] '(unclosed'" in problem


@pytest.mark.parametrize(
    ("sink", "said"),
    [
        ("mysql://u@db/capture", "expected 'parquet' or a postgresql://"),
        ("postgresql://u:s3cret@db/capture", "a password does not belong in the recipe"),
        ("postgresql://u@db/capture?password=s3cret", "a password does not belong"),
        ("postgresql://u@db", "names no host or no database"),
        ("postgresql://u@db:port/capture", "is not a URL"),
        ("s3://bucket/capture", "expected 'parquet' or a postgresql://"),
    ],
)
def test_a_capture_sink_that_is_not_parquet_or_a_postgres_url_is_refused(
    tmp_path: Path, sink: str, said: str
) -> None:
    capture = f"serving:\n  capture:\n    enabled: true\n    sink: '{sink}'\n"
    (problem,) = _problems(_write(tmp_path, VALID + capture))
    assert problem.startswith("serving.capture.sink: ") and said in problem, problem
    assert "s3cret" not in problem.split("belong", 1)[-1]


def test_a_postgres_capture_sink_reaches_the_serving_spec(tmp_path: Path) -> None:
    from conveyor.serving_spec import ServingSpec

    sink = "postgresql://capture@db.internal:5433/traffic"
    capture = f"serving:\n  capture:\n    enabled: true\n    sink: '{sink}'\n"
    spec = ServingSpec.from_recipe(load_recipe(_write(tmp_path, VALID + capture), []))
    assert spec.capture.sink == sink and ServingSpec().capture.sink == "parquet"


def test_the_capture_section_reaches_the_serving_spec(tmp_path: Path) -> None:
    from conveyor.serving_spec import ServingSpec

    capture = "serving:\n  capture:\n    enabled: true\n    sample: 0.5\n    redact: ['x+']\n"
    spec = ServingSpec.from_recipe(load_recipe(_write(tmp_path, VALID + capture), []))
    assert spec.capture.enabled and spec.capture.sample == 0.5 and spec.capture.redact == ("x+",)
    assert not ServingSpec().capture.enabled  # off unless a recipe turns it on
