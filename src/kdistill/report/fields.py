"""What each field of ``results.json`` means: the one documented source.

The docs' ``results.json`` reference is generated from these mappings, and the test suite checks
that every key a real run writes is documented here (:func:`undocumented`), so the two cannot drift.
"""

from __future__ import annotations

#: Top-level keys.
RESULTS = {
    "title": "The heading of the table and the report.",
    "dataset": "The data's name.",
    "classes": "The class names, in the order of the models' outputs.",
    "seeds": "The seeds every model was trained with.",
    "split_sizes": "Labelled samples in the train, val and test splits (of the first seed).",
    "split_seed": "The seed whose split every seed used when the teacher was loaded (its own training data could "
                  "otherwise move into the test split), else null.",
    "unlabeled": "Unlabelled inputs the distilled students also trained on.",
    "synthetic": "Tables: synthetic transfer rows per seed the distilled students trained on (null: none).",
    "models": "One entry per model: the teacher, then each student (fields below).",
    "comparisons": "Each distilled student against the same student alone (fields below).",
    "teacher_checks": "The check of the teacher on validation before it teaches, per seed (fields below).",
    "warnings": "What the study warned about: a teacher no better than the student alone, a collapsed teacher, a "
                "model predicting one class for every test sample, an export that failed, a student kept alone.",
}

#: Keys of each entry of ``models`` (metrics hold the mean over seeds).
MODEL = {
    "name": "The model's name.",
    "kind": "torch, sklearn, or teacher (a teacher used as loaded).",
    "params": "Trainable and frozen parameters (PyTorch models; null for others).",
    "size_mb": "Parameters and buffers in 10^6 bytes (a scikit-learn model: its skops file).",
    "hyperparams": "The model's options and the recipe's settings (alpha, T, epochs, lr, ...).",
    "accuracy": "Test accuracy.",
    "macro_f1": "Macro-averaged F1 on the test split.",
    "agreement": "Top-1 agreement with the teacher on the test split.",
    "kl_to_teacher": "Mean KL(teacher || model) at T=1 on the test split, in nats.",
    "ece": "Expected calibration error (15 equal-width confidence bins, Guo et al., 2017) on the test split.",
    "latency_ms": "CPU time per sample: the median of 30 timed batches of 32, divided by 32.",
    "onnx_ms_b1": "onnxruntime p50 latency of one batch of 1, in ms (null: no ONNX file).",
    "onnx_ms_b64": "onnxruntime p50 latency of one batch of 64, in ms.",
    "onnx_mb": "The ONNX file's size in 10^6 bytes.",
    "speedup": "The teacher's batch-64 ONNX latency over this model's.",
    "std": "The sample standard deviation over seeds of each metric above.",
    "per_class": "Precision, recall, F1 and support per class (the first seed).",
    "calibration": "The first seed's calibration bins (count, mean confidence, accuracy): the reliability diagram.",
    "per_seed": "The metrics of every seed (fields below).",
}

#: Keys of each entry of a model's ``per_seed``.
PER_SEED = {
    "seed": "The seed.",
    "epochs_trained": "Epochs the model trained.",
    "epoch_kept": "The epoch it ends at: its best on validation.",
    **{key: f"As in the model's entry, for this seed. {MODEL[key]}" for key in (
        "accuracy", "macro_f1", "agreement", "kl_to_teacher", "ece", "latency_ms", "onnx_ms_b1", "onnx_ms_b64",
        "onnx_mb", "speedup")},
}

#: Keys of each entry of ``comparisons``.
COMPARISON = {
    "model": "The distilled student.",
    "baseline": "The same student trained alone.",
    "accuracy_delta": "Mean paired difference of test accuracy (student minus baseline).",
    "accuracy_delta_std": "Standard deviation of the paired differences (a verdict's ± is their standard error).",
    "seeds": "Seeds compared.",
    "significant": "Whether the difference is significant by a paired t-test at 5% (needs 2 seeds or more).",
    "verdict": "The comparison in one sentence.",
    "kept_alone_seeds": "Seeds where the default recipe's guard kept the student alone (it was less accurate "
                        "distilled on validation).",
}

#: Keys of each entry of ``teacher_checks``.
TEACHER_CHECK = {
    "seed": "The seed.",
    "split": "The split checked (val).",
    "teacher_accuracy": "The teacher's accuracy there.",
    "alone_accuracy": "The best student alone's accuracy there.",
    "top_class": "The class the teacher predicts most.",
    "top_share": "The share of its predictions in that class.",
    "collapsed": "Whether the teacher predicts (nearly) one class, and so teaches no student on this seed.",
    "message": "Why it was named, if it was.",
    "cache": "The teacher-output cache entries this seed read (entry, rows, views, bytes, build seconds).",
    "folds": "Tables: the folds of its out-of-fold outputs on the training rows (0: none).",
    "train_accuracy": "Tables, a teacher whose outputs on its training rows are not out-of-fold: its accuracy there "
                      "(near 1 and well above validation: it memorised them, and a warning says so).",
    "kept": "The distilled students the default recipe's guard kept alone on this seed.",
    "kept_alone": "Why, one sentence per student (also under warnings).",
}

#: Where each mapping applies: a path into results.json and its fields.
SECTIONS = {"": RESULTS, "models[]": MODEL, "models[].per_seed[]": PER_SEED, "comparisons[]": COMPARISON,
            "teacher_checks[]": TEACHER_CHECK}


def undocumented(results: dict) -> list[str]:
    """The keys of ``results`` (a loaded ``results.json``) that this module does not document, as paths."""
    missing = [k for k in results if k not in RESULTS]
    for model in results.get("models", []):
        missing += [f"models[].{k}" for k in model if k not in MODEL]
        missing += [f"models[].per_seed[].{k}" for s in model.get("per_seed", []) for k in s if k not in PER_SEED]
        missing += [f"models[].std.{k}" for k in model.get("std", {}) if k not in MODEL]
    missing += [f"comparisons[].{k}" for c in results.get("comparisons", []) for k in c if k not in COMPARISON]
    missing += [f"teacher_checks[].{k}" for c in results.get("teacher_checks", []) for k in c if k not in TEACHER_CHECK]
    return sorted(set(missing))
