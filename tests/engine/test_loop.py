"""The training loop: frozen teacher, gradients, determinism, early stopping, resume, errors."""

import pytest
import torch
from torch import nn

import kdistill
from kdistill.data import ArrayDataset, Splits
from kdistill.engine import NonFiniteLossError, fit
from kdistill.models import mlp


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_distill_learns_and_leaves_teacher_untouched(blobs, teacher, student):
    kdistill.fit(teacher, blobs, epochs=10, batch_size=16, lr=0.01, quiet=True)
    before = snapshot(teacher)
    history = kdistill.distill(teacher, student, blobs, alpha=0.5, temperature=4, epochs=10, batch_size=16,
                               lr=0.01, quiet=True)
    assert same(before, snapshot(teacher)), "teacher weights changed during distillation"
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert history.epochs[-1]["val_accuracy"] > 0.8
    assert {"train_ce", "train_kd", "val_ce", "val_kd"} <= set(history.epochs[-1])


def test_teacher_stays_in_eval_when_a_wrapper_trains(blobs, teacher, student):
    kdistill.distill(teacher, student, blobs, epochs=1, quiet=True)
    wrapper = nn.ModuleDict({"student": student, "teacher": teacher})
    wrapper.train()
    assert student.training
    assert not any(m.training for m in teacher.modules()), "dropout in the teacher was switched back on"


def test_gradient_reaches_only_the_student(blobs, teacher, student):
    """One step by hand through the engine's objective: grads on the student, none on the teacher."""
    seen = {}

    class Probe:
        def on_batch_end(self, state):
            seen["student"] = [p.grad is not None and p.grad.abs().sum() > 0 for p in state.model.parameters()]
            seen["teacher"] = [p.grad for p in teacher.parameters()]
            state.stop = True

    kdistill.distill(teacher, student, blobs, alpha=1.0, epochs=1, quiet=True, callbacks=[Probe()])
    assert all(seen["student"])
    assert all(g is None for g in seen["teacher"])


def test_teacher_in_train_mode_is_still_run_in_eval(blobs, teacher, student):
    """A teacher handed over in train mode (dropout on) still gives deterministic logits."""
    teacher.train()
    t = kdistill.as_teacher(teacher)
    x = blobs.train.x[:16]
    assert torch.equal(t.logits(x), t.logits(x))
    assert not t.logits(x).is_inference()


def test_same_seed_same_weights(blobs):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = mlp(5, 3, hidden=[16], dropout=0.3)
        fit(m, blobs, epochs=3, seed=7, quiet=True)
        runs.append(snapshot(m))
    assert same(*runs)


@pytest.mark.parametrize("opt,sched", [("sgd", "step"), ("adamw", "cosine"), ("adam", "none")])
def test_optimizers_and_schedules(blobs, opt, sched):
    torch.manual_seed(0)
    m = mlp(5, 3, hidden=[16])
    h = fit(m, blobs, epochs=4, optimizer=opt, schedule=sched, lr=0.05, step_size=2, quiet=True)
    lrs = [r["lr"] for r in h.epochs]
    if sched == "none":
        assert lrs == [0.05] * 4
    else:
        assert lrs[-1] < lrs[0]
    assert h.epochs[-1]["train_loss"] < h.epochs[0]["train_loss"]


class _Frozen(nn.Module):
    """A fixed classifier that still trains: its one free parameter has zero gradient, so its
    predictions are the same at every batch of every epoch."""

    def __init__(self, net):
        super().__init__()
        self.net = net.requires_grad_(False)
        self.free = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.net(x) + 0 * self.free


def test_epoch_metrics_equal_the_directly_computed_ones(blobs, monkeypatch):
    """Train and val loss and accuracy are accumulated on the device (predictions counted several
    batches at a time); over many batches they must equal the values computed in one go."""
    from kdistill.engine import sums

    monkeypatch.setattr(sums, "PENDING", 4)
    torch.manual_seed(0)
    model = _Frozen(mlp(5, 3, hidden=[8]))
    batch_size = 2
    assert len(blobs.val) / batch_size > 4 * sums.PENDING  # several groups of pending batches, and a rest
    history = fit(model, blobs, epochs=2, batch_size=batch_size, lr=0.01, quiet=True)
    for prefix, ds in (("train_", blobs.train), ("val_", blobs.val)):
        with torch.no_grad():
            logits = model(ds.x)
        correct = int((logits.argmax(1) == ds.y).sum())
        assert 0 < correct < len(ds)  # neither all right nor all wrong: a miscount would show
        accuracy = correct / len(ds)
        ce = nn.functional.cross_entropy(logits, ds.y).item()
        for record in history.epochs:
            assert record[prefix + "accuracy"] == pytest.approx(accuracy, abs=1e-12)
            assert record[prefix + "ce"] == pytest.approx(ce, rel=1e-5)
            assert record[prefix + "loss"] == pytest.approx(ce, rel=1e-5)


def test_the_model_ends_at_its_best_validation_epoch_without_early_stopping(blobs):
    """No patience: the fit runs every epoch, then restores the best one on validation."""
    torch.manual_seed(0)
    m = mlp(5, 3, hidden=[16])
    kept = {}

    class Spoil:  # wreck the weights before the last two epochs, so the last epoch is not the best
        def on_epoch_start(self, state):
            if state.epoch == 4:
                with torch.no_grad():
                    for p in state.model.parameters():
                        p.add_(torch.randn_like(p) * 5)

        def on_epoch_end(self, state):
            kept[state.epoch] = snapshot(state.model)

    h = fit(m, blobs, epochs=6, lr=0.01, quiet=True, callbacks=[Spoil()])
    accuracy = [r["val_accuracy"] for r in h.epochs]
    assert len(h.epochs) == 6 and not h.stopped_early
    assert h.best_epoch == accuracy.index(max(accuracy)) < 4
    assert same(snapshot(m), kept[h.best_epoch]) and not same(snapshot(m), kept[5])
    h = fit(m, blobs, epochs=2, lr=0.01, quiet=True, restore_best=False, callbacks=[Spoil()])
    assert same(snapshot(m), kept[1])  # restore_best=False keeps the last epoch


def test_early_stopping_restores_best(blobs):
    torch.manual_seed(0)
    m = mlp(5, 3, hidden=[16])
    kept = {}

    class Keep:
        def on_epoch_end(self, state):
            kept[state.epoch] = snapshot(state.model)

    h = fit(m, blobs, epochs=60, lr=0.05, patience=2, monitor="val_loss", quiet=True, callbacks=[Keep()])
    assert h.stopped_early and len(h.epochs) < 60
    losses = [r["val_loss"] for r in h.epochs]
    assert h.best_epoch == losses.index(min(losses))
    assert same(snapshot(m), kept[h.best_epoch])


class Crash(Exception):
    pass


class CrashAt:
    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_end(self, state):
        if (state.epoch, state.batch) == self.at:
            raise Crash()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(blobs, tmp_path):
    opts = dict(epochs=5, lr=0.02, schedule="cosine", patience=10, batch_size=16, quiet=True, seed=3)

    def fresh():
        torch.manual_seed(0)
        return mlp(5, 3, hidden=[16], dropout=0.3)  # dropout: the RNG state must be restored too

    full = fresh()
    h_full = fit(full, blobs, checkpoint_dir=str(tmp_path / "a"), **opts)

    part = fresh()
    with pytest.raises(Crash):  # dies in the middle of the third epoch
        fit(part, blobs, checkpoint_dir=str(tmp_path / "b"), callbacks=[CrashAt(2, 3)], **opts)
    resumed = fresh()
    h_res = fit(resumed, blobs, checkpoint_dir=str(tmp_path / "b"), resume=True, **opts)
    assert same(snapshot(full), snapshot(resumed))
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.epochs]  # noqa: E731
    assert strip(h_full) == strip(h_res)
    assert not list((tmp_path / "b").glob("*.tmp"))


class CountSteps:
    def __init__(self):
        self.steps = 0

    def on_batch_end(self, state):
        self.steps += 1


@pytest.mark.parametrize("schedule", ["none", "warmup-cosine", "cosine"])
def test_max_steps_ends_training_after_exactly_that_many_steps(blobs, schedule):
    """A budget of 23 steps over epochs of 10 (156 training samples, batches of 16): two whole
    epochs and 3 steps of a third, whatever ``epochs`` says; warmup-cosine decays over those 23."""
    count = CountSteps()
    model = mlp(5, 3, hidden=[8])
    h = fit(model, blobs, epochs=50, max_steps=23, batch_size=16, schedule=schedule, quiet=True, callbacks=[count])
    assert len(blobs.train) == 156 and count.steps == 23
    assert [r["epoch"] for r in h.epochs] == [0, 1, 2] and not h.stopped_early
    if schedule == "warmup-cosine":  # the learning rate reaches 0 at the budget's last step, not epoch 50's
        from kdistill.engine.config import WarmupCosine
        assert WarmupCosine(23, 0.05)(23) == pytest.approx(0.0)
        assert h.epochs[2]["lr"] == pytest.approx(1e-3 * WarmupCosine(23, 0.05)(20))
    fewer = CountSteps()
    fit(mlp(5, 3, hidden=[8]), blobs, epochs=2, max_steps=23, batch_size=16, quiet=True, callbacks=[fewer])
    assert fewer.steps == 20  # epochs come first when they end sooner


def test_max_steps_survives_an_interruption(blobs, tmp_path):
    """Resumed after a crash in its last, cut-short epoch, the run takes only the budget's steps
    left and ends with the weights of a run never interrupted."""
    opts = dict(epochs=50, max_steps=23, batch_size=16, lr=0.02, schedule="warmup-cosine", quiet=True, seed=3)

    def fresh():
        torch.manual_seed(0)
        return mlp(5, 3, hidden=[8])

    full = fresh()
    fit(full, blobs, checkpoint_dir=str(tmp_path / "a"), **opts)
    with pytest.raises(Crash):
        fit(fresh(), blobs, checkpoint_dir=str(tmp_path / "b"), callbacks=[CrashAt(2, 1)], **opts)
    count, resumed = CountSteps(), fresh()
    h = fit(resumed, blobs, checkpoint_dir=str(tmp_path / "b"), resume=True, callbacks=[count], **opts)
    assert count.steps == 3 and [r["epoch"] for r in h.epochs] == [0, 1, 2]  # from the end of epoch 2
    assert same(snapshot(full), snapshot(resumed))


def test_existing_checkpoint_is_not_overwritten(blobs, tmp_path, caplog):
    """Running the quick start again starts a new checkpoint folder beside the earlier one."""
    fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path / "ck"), quiet=True)
    before = (tmp_path / "ck" / "last.pt").read_bytes()
    for n in (2, 3):
        with caplog.at_level("WARNING", logger="kdistill"):
            fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path / "ck"), quiet=True)
        assert f"this run checkpoints into {tmp_path / f'ck-{n}'}" in caplog.text and "resume=True" in caplog.text
        assert (tmp_path / f"ck-{n}" / "last.pt").is_file()
    assert (tmp_path / "ck" / "last.pt").read_bytes() == before


def test_resume_with_another_architecture_is_a_clear_error(blobs, tmp_path):
    fit(mlp(5, 3, hidden=[8]), blobs, epochs=1, checkpoint_dir=str(tmp_path), quiet=True)
    with pytest.raises(ValueError, match="cannot resume from .*last.pt: it does not match"):
        fit(mlp(5, 3, hidden=[9]), blobs, epochs=2, checkpoint_dir=str(tmp_path), resume=True, quiet=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(blobs, tmp_path):
    class Poison:
        def on_epoch_start(self, state):
            if state.epoch == 2:  # from epoch 3 on, the model outputs NaN
                with torch.no_grad():
                    state.model.classifier.bias.fill_(float("nan"))

    m = mlp(5, 3, hidden=[8])
    with pytest.raises(NonFiniteLossError, match=r"non-finite at epoch 3, batch 1 \(ce=nan\).*end of epoch 2"):
        fit(m, blobs, epochs=5, checkpoint_dir=str(tmp_path), callbacks=[Poison()], quiet=True)
    blob = torch.load(tmp_path / "last.pt", weights_only=True)
    assert blob["position"] == [2, 0]  # the checkpoint of the last epoch that completed (the 2nd) is kept
    assert all(torch.isfinite(v).all() for v in blob["model"].values())


# ---------------------------------------------------------------------------------------------
# Errors named before training


def tiny_splits(n=30, k=3, y=None):
    x = torch.randn(n, 4)
    y = torch.arange(n) % k if y is None else y
    ds = ArrayDataset(x, y)
    return Splits(ds, ds, ds, [str(i) for i in range(k)])


def test_student_output_size_mismatch():
    with pytest.raises(ValueError, match=r"student outputs shape \(4, 5\) .* data has 3 classes"):
        kdistill.fit(mlp(4, 5), tiny_splits(), epochs=1, quiet=True)


def test_teacher_student_output_mismatch():
    with pytest.raises(ValueError, match=r"teacher outputs \(4,\) per sample and the student \(3,\)"):
        kdistill.distill(mlp(4, 4), mlp(4, 3), tiny_splits(), epochs=1, quiet=True)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes, found values from 0 to 5"):
        tiny_splits(y=torch.tensor([0, 1, 2, 5] * 5 + [0] * 10))


def test_negative_labels():
    with pytest.raises(ValueError, match=r"found values from -1 to 2"):
        tiny_splits(y=torch.tensor([-1, 1, 2] * 10))


def test_empty_split():
    ds = ArrayDataset(torch.randn(10, 4), torch.arange(10) % 2)
    empty = ArrayDataset(torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    with pytest.raises(ValueError, match="the val split of 'data' is empty"):
        Splits(ds, empty, ds, ["a", "b"])
    with pytest.raises(ValueError, match="the train split is required"):
        Splits(None, ds, ds, ["a", "b"])


@pytest.mark.parametrize("kw,msg", [
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
    ({"temperature": -2.0}, "temperature must be a finite number > 0, got -2.0"),
    ({"alpha": 1.2}, r"alpha must lie in \[0, 1\] .* got 1.2"),
    ({"alpha": -0.5}, r"alpha must lie in \[0, 1\] .* got -0.5"),
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1, got 0"),
    ({"max_steps": 2.5}, "max_steps must be an integer >= 1, got 2.5"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of adam, adamw, sgd, got 'rmsprop'"),
    ({"schedule": "linear"}, "schedule must be one of none, cosine, step, warmup-cosine, got 'linear'"),
    ({"lr": 0}, "lr must be a finite number > 0, got 0"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
    ({"epochz": 3}, r"unknown training option\(s\) \['epochz'\]"),
])
def test_bad_settings(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        kdistill.distill(mlp(4, 3), mlp(4, 3), tiny_splits(), quiet=True, **kw)


def test_teacher_required_for_kd():
    with pytest.raises(ValueError, match=r"method\(s\) \['kd'\] need a teacher, but teacher=None"):
        fit(mlp(4, 3), tiny_splits(), objective=[("ce", 0.5), ("kd", 0.5)], quiet=True)


def test_unknown_method_suggests():
    with pytest.raises(ValueError, match=r"unknown method 'kdd' \(did you mean 'kd'\?\)"):
        fit(mlp(4, 3), tiny_splits(), objective=[("kdd", 1.0)], quiet=True)


def test_monitor_must_exist(blobs):
    with pytest.raises(ValueError, match=r"the best epoch is chosen by 'val_f1' \(monitor\), which the history"):
        fit(mlp(5, 3), blobs, epochs=2, patience=1, monitor="val_f1", quiet=True)



def test_early_stopping_minimizes_loss_terms():
    """Any history metric but accuracy is a loss: val_ce falling must count as improving."""
    from kdistill.engine import EarlyStopping, State

    stop = EarlyStopping(monitor="val_ce", patience=2, restore_best=False)
    state = State(model=mlp(2, 2), config=None)
    for epoch, value in enumerate([1.0, 0.8, 0.6, 0.5]):
        state.history.append({"epoch": epoch, "val_ce": value})
        stop.on_epoch_end(state)
    assert stop.best_epoch == 3 and not state.stop
