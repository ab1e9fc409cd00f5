import pytest

from kdistill import config
from kdistill.config import ConfigError


def _problem(raw, overrides=(), base="."):
    with pytest.raises(ConfigError) as info:
        config.validate(config.apply_overrides(raw, overrides), base=base)
    return info.value


BAD = [
    # (overrides, field path, words the message must hold)
    (["train.epoch=3"], "train.epoch", "did you mean 'epochs'"),
    (["teachr.model=cnn"], "teachr", "did you mean 'teacher'"),
    (["train.epochs=ten"], "train.epochs", "valid integer"),
    (["train.epochs=0"], "train.epochs", ">= 1, got 0"),
    (["train.optimizer=lion"], "train.optimizer", "adam, adamw, sgd"),
    (["students.1.train.lr=-1"], "students.1.train.lr", "> 0"),
    (["data.builtin.name=digitz"], "data.builtin.name", "'digits'"),
    (["data.images.path=x"], "data", "exactly one data source"),
    (["data.test_size=1.5"], "data.test_size", "less than 1"),
    (["students.1.methods.1.name=kdd"], "students.1.methods.1", "did you mean 'kd'"),
    (["students.1.methods.1.options.temprature=2"], "students.1.methods.1", "allowed: ['temperature']"),
    (["students.1.methods.1.weight=-0.5"], "students.1.methods.1.weight", "greater than or equal to 0"),
    (["students.0.methods=[{name: kd}]"], "students", "without a teacher"),
    (["students.1.name=alone"], "students", "unique"),
    (["students.1.name=Alone"], "students", "'alone' and 'Alone' both become the file name 'alone'"),
    (["students.1.name='!?'"], "students", "model name '!?' has no letter or digit"),
    (["teacher.model=cnm"], "teacher.model", "did you mean 'cnn'"),
    (["teacher.options.hiden=[3]"], "teacher.options", "allowed: hidden"),
    (["teacher.model=no_such_module_xyz:make"], "teacher.model", "cannot import"),
    (["teacher.fit=false"], "teacher", "needs weights"),
    (["teacher.weights=missing.safetensors"], "teacher.weights", "does not exist"),
    (["data.augment.zoom=2"], "data.augment.zoom", "less than 1"),
    (["data.augment.brightness=[1.2,0.8]"], "data.augment.brightness", "low <= high"),
    (["seeds=[]"], "seeds", "at least 1"),
    (["tune.alpha=[0.9,0.1]"], "tune.alpha", "low < high"),
    (["tune.student=alone"], "tune.student", "kd term"),
    (["name=has space"], "name", "pattern"),
    (["data.unlabeled_rest=true", "data.train_fraction=1.0"], "data", "train_fraction is 1.0"),
    (["data.unlabeled.table=pool.csv"], "data", "unlabeled table data cannot join a builtin source"),
    (["data.unlabeled={}"], "data.unlabeled", "exactly one of images, idx, table"),
    (["data.unlabeled.idx=missing.gz"], "data.unlabeled.idx", "does not exist"),
    (["data.augment.mixup=0.2"], "data.augment", "set views: K too"),
    (["data.augment={views: 4, mixup: 0.2, cutmix: 1.0}"], "data.augment", "mixup or cutmix, not both"),
    (["data.augment.views=0"], "data.augment.views", "greater than or equal to 1"),
    (["train.labeled_share=1.5"], "train.labeled_share", "in (0, 1)"),
    (["train.warmup=1"], "train.warmup", "[0, 1)"),
    (["train.schedule=warmup"], "train.schedule", "warmup-cosine"),
]


@pytest.mark.parametrize("overrides, path, words", BAD, ids=[b[0][0] for b in BAD])
def test_bad_config_names_field_value_and_allowed(tiny, overrides, path, words):
    err = _problem(tiny, overrides)
    paths = [p for p, _ in err.problems]
    assert path in paths, err
    message = dict(err.problems)[path]
    assert words in message, message
    assert path in str(err)


def test_bad_value_is_quoted_in_the_message(tiny):
    err = _problem(tiny, ["train.batch_size=abc"])
    assert "'abc'" in str(err)


def test_overrides_are_typed_from_yaml(tiny):
    exp = config.validate(config.apply_overrides(tiny, ["train.epochs=3", "seeds=[1, 2]", "train.lr=1e-2"]))
    assert exp.train.epochs == 3 and exp.seeds == [1, 2] and exp.train.lr == 0.01


def test_override_syntax_and_list_index_errors(tiny):
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        config.apply_overrides(tiny, ["train.epochs"])
    with pytest.raises(ConfigError, match="not an index in 0..1"):
        config.apply_overrides(tiny, ["students.7.name=x"])


def test_yaml_is_safe_and_rejects_duplicate_keys(tmp_path):
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        config.read_yaml("name: a\nname: b\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.read_yaml("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.read_yaml("- just\n- a list\n")


def test_missing_file_and_relative_paths(tmp_path, tiny, write_experiment):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")
    (tmp_path / "t.csv").write_text("a,y\n1,x\n")
    tiny["data"] = {"table": {"path": "t.csv", "target": "y"}}
    exp = config.load(write_experiment(tiny))
    assert exp.path(exp.data.table.path) == tmp_path / "t.csv"


def test_new_engine_settings_are_accepted_without_edits():
    from dataclasses import fields

    from kdistill.engine import TrainConfig

    names = set(config.schema.TrainSettings.model_fields)
    assert names == {f.name for f in fields(TrainConfig)} - {"seed", "quiet", "checkpoint_dir", "resume"}


def test_model_names_that_collide_as_file_names_are_an_error(tiny):
    """``Student KD`` and ``student-kd`` would share weights, plots and a checkpoint folder: one
    would continue the other's training on --resume."""
    tiny["students"] = [{"name": "Student KD", "methods": [{"name": "ce"}]},
                        {"name": "student-kd", "methods": [{"name": "ce"}, {"name": "kd"}]}]
    err = _problem(tiny)
    assert dict(err.problems)["students"] == (
        "model names 'Student KD' and 'student-kd' both become the file name 'student-kd' (weights, checkpoints, "
        "plots: lowercase letters and digits, other characters become '-'); rename one")
