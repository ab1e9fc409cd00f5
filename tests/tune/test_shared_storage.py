"""A study on a shared storage keeps its meaning (issue 20, item 5): it records the search space,
task and data it was created for, and refuses to be opened with other ones, naming the fields,
so that no answer comes from trials outside the space asked for."""

import optuna
import pytest

from kdistill import config
from kdistill.cli import main
from kdistill.tune.context import RECORD, Context, study_record


def _exp(tiny, tmp_path, **tune):
    tiny["tune"] = {"temperature": [1.0, 4.0], **tune}
    return config.validate(tiny, base=tmp_path)


def _open(exp, tmp_path, url):
    return Context(exp, tmp_path / "sweep", url, "shared").study("distilled")


def test_a_study_records_its_space_and_reopens_with_the_same(tiny, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = _open(_exp(tiny, tmp_path), tmp_path, url)
    assert study.user_attrs[RECORD]["tune.temperature"] == [1.0, 4.0]
    assert _open(_exp(tiny, tmp_path), tmp_path, url).user_attrs[RECORD] == study.user_attrs[RECORD]


@pytest.mark.parametrize("change, field", [
    ({"tune": {"temperature": [5.0, 8.0]}}, "tune.temperature"),
    ({"tune": {"synthetic": ["none", "munge"]}}, "tune.synthetic"),
    ({"tune": {"synthetic_size": [2.0, 9.0]}}, "tune.synthetic_size"),
    ({"tune": {"oof": [False]}}, "tune.oof"),
    ({"tune": {"students": ["alone"]}}, "tune.students"),
    ({"data": {"builtin": {"name": "digits"}, "train_fraction": 0.5}}, "data"),
    ({"teacher": {"model": "mlp", "options": {"hidden": [16]}}}, "teacher"),
])
def test_another_space_task_or_data_on_the_same_study_is_refused(tiny, tmp_path, change, field):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _open(_exp(tiny, tmp_path), tmp_path, url)
    other = dict(tiny)
    tune = {"temperature": [1.0, 4.0], **change.get("tune", {})}
    other.update({k: v for k, v in change.items() if k != "tune"})
    exp = _exp(other, tmp_path, **tune)
    assert study_record(exp)[field] != study_record(_exp(tiny, tmp_path))[field]
    with pytest.raises(ValueError, match=rf"study 'shared' was created for another search space, task or data, "
                                         rf"differing in {field}\b.*--set tune.study_name=shared-[0-9a-f]{{8}}"):
        _open(exp, tmp_path, url)


def test_kdistill_tune_on_a_shared_storage_with_another_range_runs_nothing(tiny, write_experiment, tmp_path, capsys):
    """The case of the issue: a study swept with T in [1, 4] asked again for [5, 8] is refused
    before any training, instead of answering from its old trials."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _open(_exp(tiny, tmp_path), tmp_path, url)
    tiny["tune"]["study_name"] = "shared"
    path = write_experiment(tiny)
    out = tmp_path / "second"
    assert main(["tune", str(path), "--out", str(out), "--storage", url, "--set", "tune.temperature=[5.0,8.0]",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "differing in tune.temperature (tune.temperature: [1.0, 4.0] there, [5.0, 8.0] here)" in err
    assert not (out / "weights" / "tune-teacher.safetensors").exists()
    assert len(optuna.load_study(study_name="shared", storage=url).trials) == 0
