"""Teacher-output cache: same losses as the live teacher, right rows under shuffling,
invalidation on any change, and clear errors."""

import logging

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from kdistill import CachedTeacher, clear_cache, distill, load_dataset, models
from kdistill.cli import main
from kdistill.data import ArrayDataset, batches
from kdistill.metrics import predict_logits
from kdistill.teachers import Teacher, TorchTeacher
from kdistill.teachers.cache import cache_dir, teacher_fingerprint


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", train_fraction=0.3)


def _teacher(seed=0):
    torch.manual_seed(seed)
    return models.cnn((1, 8, 8), 10, channels=[8, 16], hidden=32)


def _student():
    torch.manual_seed(1)
    return models.cnn((1, 8, 8), 10, channels=[4], hidden=8, dropout=0.0)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float16", 5e-3)])
def test_cached_distillation_gives_the_live_losses(data, tmp_path, dtype, rtol):
    teacher = _teacher()
    live = distill(teacher, _student(), data, epochs=2, batch_size=32, quiet=True)
    cached = distill(CachedTeacher(teacher, cache_dir=tmp_path, dtype=dtype), _student(), data, epochs=2,
                     batch_size=32, quiet=True)
    for a, b in zip(live.epochs, cached.epochs):
        for key in ("train_loss", "train_kd", "train_ce", "val_loss", "val_kd"):
            assert b[key] == pytest.approx(a[key], rel=rtol), key


def test_teacher_runs_once_per_split_for_all_epochs_students_and_evaluation(data, tmp_path, counting_teacher):
    counting = counting_teacher(_teacher())
    cached = CachedTeacher(counting, cache_dir=tmp_path)
    for _ in range(2):
        distill(cached, _student(), data, epochs=3, quiet=True)
    predict_logits(cached, data.test)
    predict_logits(cached, data.test)
    assert counting.samples == len(data.train) + len(data.val) + len(data.test)


def test_shuffled_batches_read_the_right_rows(data, tmp_path):
    teacher = _teacher()
    view = CachedTeacher(teacher, cache_dir=tmp_path, dtype="float32").for_dataset(data.train)
    live = TorchTeacher(teacher)
    for x, _, idx in batches(data.train, 17, shuffle=True, seed=3):
        assert not torch.equal(idx, torch.sort(idx).values)
        torch.testing.assert_close(view.logits(x, idx), live.logits(x), rtol=1e-5, atol=1e-5)


def test_evaluation_reads_the_cache(data, tmp_path):
    teacher = _teacher()
    cached, _ = predict_logits(CachedTeacher(teacher, cache_dir=tmp_path), data.test)
    live, _ = predict_logits(teacher, data.test)
    torch.testing.assert_close(cached, live, rtol=2e-3, atol=2e-3)


def test_a_changed_teacher_gets_a_new_entry(data, tmp_path):
    teacher = _teacher()
    cached = CachedTeacher(teacher, cache_dir=tmp_path, dtype="float32")
    before = cached.for_dataset(data.train).logits(None, torch.arange(5))
    with torch.no_grad():
        teacher.classifier[-1].bias.add_(1.0)
    after = cached.for_dataset(data.train).logits(None, torch.arange(5))
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-5)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_changed_dataset_gets_a_new_entry(data, tmp_path):
    cached = CachedTeacher(_teacher(), cache_dir=tmp_path, dtype="float32")
    cached.for_dataset(data.train)
    x = data.train.x.clone()
    x[0] = 1.0 - x[0]
    changed = ArrayDataset(x, data.train.y)
    got = cached.for_dataset(changed).logits(None, torch.tensor([0]))
    torch.testing.assert_close(got, cached.teacher.logits(x[:1]), rtol=1e-5, atol=1e-5)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("damage", ["rows", "truncated", "unfinished", "null in header"])
def test_a_stale_or_damaged_entry_is_rebuilt(data, tmp_path, caplog, damage):
    cached = CachedTeacher(_teacher(), cache_dir=tmp_path, dtype="float32")
    entry = cached.for_dataset(data.train).entry
    meta = entry / "meta.json"
    if damage == "rows":
        meta.write_text(meta.read_text().replace(f'"rows": {len(data.train)}', '"rows": 3'))
    elif damage == "truncated":
        np.save(entry / "values.npy", np.zeros((3, 10), np.float32))
    elif damage == "null in header":  # numpy raises tokenize.TokenError for it on Python 3.12 (ValueError on 3.11)
        values = bytearray((entry / "values.npy").read_bytes())
        values[values.index(b"descr") + 2] = 0
        (entry / "values.npy").write_bytes(bytes(values))
    else:
        meta.unlink()
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        view = cached.for_dataset(data.train)
    assert "rebuilding" in caplog.text
    torch.testing.assert_close(view.logits(None, torch.arange(4)), cached.teacher.logits(data.train.x[:4]))


def test_augmented_data_gets_the_live_teacher_unless_opted_in(data, tmp_path):
    augmented = ArrayDataset(data.train.x, data.train.y)
    augmented.augment = lambda x: x + 0.01 * torch.randn_like(x)
    cached = CachedTeacher(_teacher(), cache_dir=tmp_path)
    assert cached.for_dataset(augmented) is cached.teacher
    assert not any(tmp_path.iterdir())
    opted = CachedTeacher(cached.teacher, cache_dir=tmp_path, cache_augmented=True)
    assert opted.for_dataset(augmented) is not cached.teacher
    assert any(tmp_path.iterdir())


def test_top_k_keeps_the_top_probabilities_and_shares_the_rest(data, tmp_path):
    teacher = _teacher()
    view = CachedTeacher(teacher, cache_dir=tmp_path, dtype="float32", top_k=3).for_dataset(data.train)
    p_live = TorchTeacher(teacher).logits(data.train.x[:6]).softmax(1)
    p_cached = view.logits(None, torch.arange(6)).softmax(1)
    top = p_live.topk(3, dim=1)
    torch.testing.assert_close(p_cached.gather(1, top.indices), top.values, rtol=1e-4, atol=1e-6)
    rest = p_cached.scatter(1, top.indices, 0.0)
    expected = (1 - top.values.sum(1, keepdim=True)) / 7
    torch.testing.assert_close(rest.sum(1), expected.squeeze(1) * 7, rtol=1e-4, atol=1e-6)
    assert torch.allclose(rest.max(1).values, expected.squeeze(1), rtol=1e-3)


def test_top_k_must_be_below_the_number_of_classes(data, tmp_path):
    with pytest.raises(ValueError, match=r"top_k must be smaller than the number of classes \(10\), got 10"):
        CachedTeacher(_teacher(), cache_dir=tmp_path, top_k=10).for_dataset(data.train)
    assert not any(tmp_path.iterdir())


def test_float16_overflow_is_an_error(tmp_path):
    ds = ArrayDataset(torch.full((4, 3), 1e5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="overflow float16.*dtype='float32'"):
        CachedTeacher(torch.nn.Identity(), cache_dir=tmp_path).for_dataset(ds)
    view = CachedTeacher(torch.nn.Identity(), cache_dir=tmp_path, dtype="float32").for_dataset(ds)
    assert view.logits(None, torch.arange(4)).max() == 1e5


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": "bfloat16"}, "dtype must be 'float16' or 'float32', got 'bfloat16'"),
    ({"top_k": 0}, "top_k must be None \\(dense\\) or an integer >= 1, got 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CachedTeacher(torch.nn.Identity(), **kwargs)


def test_lookups_need_a_valid_index(data, tmp_path):
    view = CachedTeacher(_teacher(), cache_dir=tmp_path).for_dataset(data.val)
    with pytest.raises(ValueError, match="index=None"):
        view.logits(data.val.x[:2])
    with pytest.raises(IndexError, match=f"{len(data.val)} rows.*from 0 to {len(data.val)}"):
        view.logits(None, torch.tensor([0, len(data.val)]))


def test_a_teacher_without_fingerprint_cannot_be_cached(data, tmp_path):
    class Opaque(Teacher):
        def logits(self, x, index=None):
            return torch.zeros(len(x), 10)

    with pytest.raises(TypeError, match="cannot fingerprint a Opaque teacher.*fingerprint\\(\\)"):
        CachedTeacher(Opaque(), cache_dir=tmp_path).for_dataset(data.train)


def test_distill_cache_option(data, tmp_path):
    distill(_teacher(), _student(), data, epochs=1, quiet=True, cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # train and val
    with pytest.raises(TypeError, match="cache must be True, False or a folder path, got 3"):
        distill(_teacher(), _student(), data, epochs=1, cache=3)


def test_cache_folder_from_the_environment_and_clear(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDISTILL_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    assert cache_dir(tmp_path / "x") == tmp_path / "x"
    CachedTeacher(_teacher()).for_dataset(data.val)
    (tmp_path / "keep.txt").write_text("not a cache entry")
    (tmp_path / "other").mkdir()
    assert main(["cache", "clear"]) == 0
    assert "removed 1 teacher-cache entry" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "other"]
    assert clear_cache(tmp_path / "missing") == (0, 0)


def test_the_fingerprint_follows_the_weights():
    a, b = TorchTeacher(_teacher(0)), TorchTeacher(_teacher(0))
    assert teacher_fingerprint(a) == teacher_fingerprint(b)
    with torch.no_grad():
        next(b.module.parameters())[0].view(-1)[0] += 1e-3
    assert teacher_fingerprint(a) != teacher_fingerprint(b)


def test_the_live_teacher_runs_on_validation_once_and_its_outputs_are_the_same(data, monkeypatch, counting_teacher):
    """Without a cache, the live teacher runs on every training batch, but on the validation split
    only in the first epoch: later epochs read its remembered outputs, which change nothing."""
    from kdistill.teachers import serving

    def run():
        counting = counting_teacher(_teacher())
        history = distill(counting, _student(), data, epochs=3, batch_size=32, quiet=True)
        return counting.samples, history

    dry_run = 4  # the shape check's few training samples
    samples, remembered = run()
    assert samples == dry_run + 3 * len(data.train) + len(data.val)
    monkeypatch.setattr(serving, "MEMORY_LIMIT", 0)  # too large to keep: the teacher runs every epoch
    samples, live = run()
    assert samples == dry_run + 3 * len(data.train) + 3 * len(data.val)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.epochs]  # noqa: E731
    assert strip(remembered) == strip(live)


def test_splits_augmentation_makes_the_engine_use_the_live_teacher(data, tmp_path):
    """With Splits.augment, the training batches are transformed by the loop: the teacher must
    see the same transformed inputs as the student, never its cached clean-input outputs."""
    from dataclasses import replace

    from kdistill.methods.base import Method

    seen = []

    class Probe(Method):
        name = "probe"

        def forward(self, step):
            if step.logits_s.requires_grad:  # training batches only
                seen.append((step.x.clone(), step.logits_t.clone()))
            return step.logits_s.sum() * 0.0

    teacher = _teacher()
    shifted = replace(data, augment=lambda x: x + 0.5)  # a visible, deterministic "augmentation"
    cached = CachedTeacher(teacher, cache_dir=tmp_path)
    distill(cached, _student(), shifted, objective=[("ce", 1.0), Probe()], epochs=1, quiet=True)
    assert seen
    for x, logits_t in seen:
        torch.testing.assert_close(logits_t, teacher(x))  # the teacher saw the augmented batch


def test_feature_methods_use_the_live_teacher_behind_a_cache(data, tmp_path):
    """A cache serves logits only; a method tapping teacher layers must get the live teacher."""
    teacher = _teacher()
    history = distill(CachedTeacher(teacher, cache_dir=tmp_path), _student(), data, epochs=1, quiet=True,
                      objective=[("ce", 0.5), ("fitnet", 1.0, {"student": "features.2", "teacher": "features.6"})])
    assert history.epochs[-1]["train_fitnet"] > 0


def test_the_fingerprint_covers_structure_and_output_kind():
    from torch import nn

    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    tanh = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    tanh.load_state_dict(relu.state_dict())  # the same weights, another function
    assert teacher_fingerprint(TorchTeacher(relu)) != teacher_fingerprint(TorchTeacher(tanh))
    assert (teacher_fingerprint(TorchTeacher(relu, output="logits"))
            != teacher_fingerprint(TorchTeacher(relu, output="probabilities")))


class Counting(HistGradientBoostingClassifier):
    """Counts the samples it gives probabilities for."""

    calls = 0

    def predict_proba(self, x):
        Counting.calls += len(x)
        return super().predict_proba(x)


def test_sklearn_and_onnx_teachers_get_content_fingerprints(data, tmp_path):
    from kdistill.export import export_onnx
    from kdistill.teachers import as_teacher

    x, y = data.train.x.reshape(len(data.train), -1).numpy(), data.train.y.numpy()
    fits = [HistGradientBoostingClassifier(max_iter=n, random_state=0).fit(x, y) for n in (5, 5, 6)]
    prints = [teacher_fingerprint(as_teacher(m)) for m in fits]
    assert prints[0] == prints[1] != prints[2]  # the same model learned twice, then another
    onnx = [export_onnx(_teacher(seed), (1, 8, 8), tmp_path / f"t{seed}.onnx") for seed in (0, 1)]
    assert teacher_fingerprint(as_teacher(onnx[0])) != teacher_fingerprint(as_teacher(onnx[1]))
    assert teacher_fingerprint(as_teacher(onnx[0])) != teacher_fingerprint(as_teacher(onnx[0], output="probabilities"))

    counting = Counting(max_iter=5, random_state=0).fit(x, y)
    cached = CachedTeacher(counting, cache_dir=tmp_path / "cache")
    for _ in range(2):  # two students: the teacher runs once per split
        distill(cached, models.mlp((1, 8, 8), 10, hidden=[8]), data, epochs=2, quiet=True)
    assert Counting.calls == len(data.train) + len(data.val)


def test_a_torch_teachers_cache_is_built_by_onnx_runtime_with_pytorchs_outputs(tmp_path, monkeypatch):
    """The build runs the fastest engine (ONNX Runtime for a CPU torch module), and what it stores
    is what PyTorch computes, to the cache's float32 precision."""
    from kdistill.data import ArrayDataset
    from kdistill.models import cnn
    from kdistill.teachers import CachedTeacher, fast

    torch.manual_seed(0)
    module = cnn((1, 8, 8), 3, channels=[4], hidden=8).eval()
    data = ArrayDataset(torch.randn(40, 1, 8, 8), torch.zeros(40, dtype=torch.long), "x")
    used = []
    runner = fast.onnx_runner
    monkeypatch.setattr("kdistill.teachers.cache.onnx_runner", lambda t, x: used.append(runner(t, x)) or used[-1])
    view = CachedTeacher(module, cache_dir=tmp_path).for_dataset(data)
    assert used and used[0] is not None  # ONNX Runtime built it
    index = torch.arange(40)
    with torch.no_grad():
        assert torch.equal(view.logits(data.x, index), module(data.x).half().float())  # float16 of PyTorch's
    CachedTeacher(module, cache_dir=tmp_path, dtype="float32").for_dataset(data)
    assert len(used) == 1  # a float32 cache is built by PyTorch: the live outputs bit for bit
    assert fast.onnx_runner(CachedTeacher(module), data.x[:4]) is None  # only a plain torch teacher
