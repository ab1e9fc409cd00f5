"""ONNX export of fitted classifiers that are not PyTorch modules: scikit-learn estimators and
pipelines (through skl2onnx), LightGBM's ``LGBMClassifier`` and XGBoost's ``XGBClassifier``
(through onnxmltools' converters, registered with skl2onnx), CatBoost's ``CatBoostClassifier``
(its own ONNX writer), :class:`~kdistill.sklearn.DistilledClassifier` around any of them, and
:class:`~kdistill.categoricals.NativeCategoricals` around LightGBM or XGBoost (see
:mod:`.categoricals`).

Every exported model has one float32 input ``input`` of shape ``(batch, n_features)`` and the
outputs ``probabilities`` (float32, ``(batch, classes)``, columns in the order of the model's
``classes_``) first, then ``label``.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..categoricals import NativeCategoricals
from ..files import atomic_write
from ..sklearn import DistilledClassifier
from .categoricals import refusal, with_codes
from .runtime import ParityError, latency, session

# Largest |difference| allowed between the ONNX model's probabilities on float32 rows and
# predict_proba's on the same rows as given (float64 holds float32 exactly). Measured on 1,000
# training and 1,000 new rows: at most 3e-7 for trees, forests, boosting (scikit-learn, LightGBM,
# XGBoost, CatBoost) and logistic regression, binary, multiclass, string labels (float32 sums of
# leaf values and a float32 softmax). A row routed differently in one tree typically moves
# a probability by 1e-3 or more, so 1e-4 catches it. predict_proba is not given the float32
# rows: a HistGradientBoosting split threshold is a training value, which the converter rounds
# to float32 like the rows; routing float32-rounded training rows through float64 thresholds
# instead sends 20-30% of them elsewhere (|dp| up to 0.44), a mismatch no deployment sees.
PROBA_TOLERANCE = 1e-4
OPSET = {"": 17, "ai.onnx.ml": 3}  # onnxmltools would emit ai.onnx.ml 5, which skl2onnx 1.20 cannot build
SUPPORTED = ("scikit-learn classifiers and pipelines that skl2onnx converts (DecisionTree, LogisticRegression, "
             "RandomForest, ExtraTrees, GradientBoosting, HistGradientBoosting, ...), lightgbm.LGBMClassifier, "
             "xgboost.XGBClassifier, catboost.CatBoostClassifier, a DistilledClassifier with one of them as "
             "its student, and NativeCategoricals around LGBMClassifier or XGBClassifier")
_BOOSTERS = {"lightgbm": ("LGBMClassifier", "LightGbmLGBMClassifier", "lightgbm.operator_converters.LightGbm",
                          "convert_lightgbm"),
             "xgboost": ("XGBClassifier", "XGBoostXGBClassifier", "xgboost.operator_converters.XGBoost",
                         "convert_xgboost")}


def export_estimator(model, n_features: int, path, *, x_check=None) -> dict:
    """Export a fitted classifier to ONNX, check it against ``predict_proba`` and time it.

    Parameters
    ----------
    model : classifier
        A fitted classifier with ``classes_`` and ``predict_proba``; see :data:`SUPPORTED`.
    n_features : int
        Number of input features.
    path : str or Path
        The ``.onnx`` file to write (atomically); nothing is written when the check fails.
    x_check : array-like of shape (n_rows, n_features), optional
        Rows of the parity check (real data exercises the branches the model uses); 64
        standard-normal float32 rows otherwise. ``predict_proba`` gets them as given, the ONNX
        model cast to float32, as it would in deployment.

    Returns
    -------
    dict
        ``onnx_ms_b1`` and ``onnx_ms_b64`` (onnxruntime p50 latency in ms per batch of 1 and of
        64), ``onnx_mb`` (file size) and ``parity`` (largest |probability difference|).

    Raises
    ------
    ValueError
        If ``model`` is not a fitted classifier, no converter supports it (its type and what is
        supported are named), or ``n_features`` or ``x_check`` do not fit it.
    ParityError
        If the ONNX probabilities differ from ``predict_proba``'s by more than
        :data:`PROBA_TOLERANCE`.
    """
    data = estimator_to_onnx(model, n_features).SerializeToString()
    x = _check_rows(x_check, n_features)
    sess = session(data)
    diff = _parity(model, sess, x)
    if not diff <= PROBA_TOLERANCE:
        raise ParityError(f"{_name(model)}: the ONNX model's probabilities differ from predict_proba's by up to "
                          f"{diff:.3g}, above the tolerance {PROBA_TOLERANCE:g}; the export is not faithful, "
                          f"so {str(path)!r} was not written")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    times = latency(sess, (n_features,))
    return {"onnx_ms_b1": times["batch1"]["p50_ms"], "onnx_ms_b64": times["batch64"]["p50_ms"],
            "onnx_mb": len(data) / 1e6, "parity": diff}


def estimator_to_onnx(model, n_features: int):
    """The ONNX model (``onnx.ModelProto``, passed by ``onnx.checker``) of a fitted classifier,
    neither written nor compared with ``predict_proba``; input and outputs as in the module
    docstring. Raises ValueError as :func:`export_estimator` does."""
    import onnx

    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    _check_classifier(model, n_features)
    if isinstance(model, DistilledClassifier):
        proto = _distilled(estimator_to_onnx(model.student_, n_features), model)
    elif isinstance(model, NativeCategoricals):
        if refusal(model):
            raise _unsupported(model, refusal(model))
        proto = with_codes(estimator_to_onnx(model.estimator_, len(model.layout)), model, n_features)
    elif _library(model) == "catboost":
        proto = _catboost(model, n_features)
    else:
        proto = _skl2onnx(model, n_features)
    _probabilities_first(proto, model)
    onnx.checker.check_model(proto)
    return proto


def _check_classifier(model, n_features: int) -> None:
    name = _name(model)
    try:
        classes = getattr(model, "classes_", None)
    except Exception:  # noqa: BLE001 - an unfitted model's property may raise anything
        classes = None
    if not hasattr(model, "predict_proba") or classes is None:
        raise ValueError(f"{name} is not a fitted classifier (it needs classes_ and predict_proba): fit it first; "
                         f"regressors are not exported. Supported: {SUPPORTED}")
    if isinstance(model, DistilledClassifier) and not hasattr(model.student_, "classes_"):
        raise ValueError(f"{name} has a regressor student ({_name(model.student_)}); only classifier students are "
                         f"exported. Supported: {SUPPORTED}")
    own = getattr(model, "n_features_in_", None)
    if own is not None and int(own) != n_features:
        raise ValueError(f"n_features={n_features} differs from {name}'s n_features_in_={int(own)}")


def _name(model) -> str:
    if isinstance(model, NativeCategoricals):
        return f"NativeCategoricals({_name(model.estimator)})"
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        return f"Pipeline({', '.join(_name(s) for _, s in steps)})"
    return type(model).__name__


def _library(model) -> str:
    return type(model).__module__.split(".")[0]


def _parts(model):
    """``model`` and, for a pipeline, every step (nested pipelines included)."""
    yield model
    for _, step in getattr(model, "steps", None) or ():
        yield from _parts(step)


def _final(model):
    steps = getattr(model, "steps", None)
    return _final(steps[-1][1]) if steps else model


def _unsupported(model, reason: str) -> ValueError:
    return ValueError(f"{_name(model)} cannot be exported to ONNX: {reason}. Supported: {SUPPORTED}")


@functools.cache
def _register(library: str) -> None:
    """Teach skl2onnx (process-wide, once) the onnxmltools converter of ``library``'s classifier."""
    import importlib

    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    cls_name, alias, module, fn = _BOOSTERS[library]
    cls = getattr(importlib.import_module(library), cls_name)
    convert = getattr(importlib.import_module(f"onnxmltools.convert.{module}"), fn)
    update_registered_converter(cls, alias, calculate_linear_classifier_output_shapes, convert,
                                options={"nocl": [True, False], "zipmap": [True, False, "columns"]})


def _needs(module: str, model) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise _unsupported(model, f"its converter needs {module}, which is not installed (pip install {module})")


def _skl2onnx(model, n_features: int):
    _needs("skl2onnx", model)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator
    from sklearn.ensemble import HistGradientBoostingClassifier

    for library in {_library(p) for p in _parts(model)} & set(_BOOSTERS):
        _needs("onnxmltools", model)
        _register(library)
    own = {HistGradientBoostingClassifier: _hist_gradient_boosting}  # for this conversion only
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skl2onnx's notices about opsets and versions
            return convert_sklearn(model, initial_types=[("input", FloatTensorType([None, n_features]))],
                                   options={id(_final(model)): {"zipmap": False}}, target_opset=OPSET,
                                   custom_conversion_functions=own)
    except (MissingConverter, MissingShapeCalculator) as exc:
        raise _unsupported(model, f"skl2onnx has no converter for it or one of its steps "
                                  f"({str(exc).splitlines()[0]})") from exc
    except Exception as exc:  # noqa: BLE001 - a converter's own failure, re-raised with the model named
        raise _unsupported(model, f"skl2onnx failed on it ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
                           ) from exc


def _hist_gradient_boosting(scope, operator, container):
    """skl2onnx's converter of HistGradientBoostingClassifier, given a container that passes
    Python bools in list attributes as ints: skl2onnx (1.20 and 1.21) marks each leaf's
    missing-value flag ``False``, which protobuf >= 7 refuses in an integer field."""
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier

    convert_sklearn_random_forest_classifier(scope, operator, _IntegerLists(container))


class _IntegerLists:
    def __init__(self, container):
        self._container = container

    def __getattr__(self, name):
        return getattr(self._container, name)

    def add_node(self, *args, **attrs):
        attrs = {k: [int(v) if isinstance(v, bool) else v for v in a] if isinstance(a, list) else a
                 for k, a in attrs.items()}
        return self._container.add_node(*args, **attrs)


def _catboost(model, n_features: int):
    """CatBoost's own ONNX file, made like skl2onnx's: input renamed ``input``, its ZipMap
    (a list of dictionaries) dropped so that ``probabilities`` is a tensor."""
    import onnx
    from onnx import TensorProto, helper

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.onnx"
        try:
            model.save_model(str(file), format="onnx")
        except Exception as exc:  # noqa: BLE001 - CatBoost's refusal (e.g. categorical features), model named
            raise _unsupported(model, f"CatBoost cannot write it as ONNX ({str(exc).splitlines()[0]})") from exc
        proto = onnx.load(str(file))
    graph = proto.graph
    (feed,) = graph.input
    width = feed.type.tensor_type.shape.dim[1].dim_value
    if width != n_features:
        raise ValueError(f"n_features={n_features} differs from {_name(model)}'s {width} features")
    _rename(graph, feed.name, "input")
    for zipmap in [n for n in graph.node if n.op_type == "ZipMap"]:
        graph.node.remove(zipmap)
        graph.output.remove(next(o for o in graph.output if o.name == zipmap.output[0]))
        _rename(graph, zipmap.input[0], "probabilities")
        graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                          [None, len(model.classes_)]))
    return proto


def _distilled(proto, model):
    """The student's ONNX model extended into the :class:`DistilledClassifier`'s: its columns
    placed at their class indices, raised to the power ``temperature`` in soft mode and
    renormalised (uniform where all are 0), and the label taken from the classifier's
    ``classes_`` (see :meth:`DistilledClassifier.predict_proba`)."""
    from onnx import helper, numpy_helper

    graph, k = proto.graph, len(model.classes_)
    place = np.zeros((len(model.student_.classes_), k), np.float32)
    place[np.arange(len(place)), np.asarray(model.student_.classes_, dtype=np.int64)] = 1
    classes = np.asarray(model.classes_)
    constants = {"place": place, "uniform": np.full((1, k), 1 / k, np.float32), "axes": np.array([1], np.int64),
                 "zero": np.zeros(1, np.float32), "power": np.array([model.temperature], np.float32),
                 "classes": _label_array(classes)}
    graph.initializer.extend(numpy_helper.from_array(v, f"kd_{n}") for n, v in constants.items())
    _rename(graph, "probabilities", "kd_student_probabilities")
    _rename(graph, "label", "kd_student_label")  # a class index; the classifier's label is made below
    soft = model.mode == "soft" and float(model.temperature) != 1.0
    steps = [("MatMul", ["kd_student_probabilities", "kd_place"], "kd_q"),
             *([("Pow", ["kd_q", "kd_power"], "kd_q_t")] if soft else []),
             ("ReduceSum", ["kd_q_t" if soft else "kd_q", "kd_axes"], "kd_sum"),
             ("Greater", ["kd_sum", "kd_zero"], "kd_positive"),
             ("Div", ["kd_q_t" if soft else "kd_q", "kd_sum"], "kd_normalised"),
             ("Where", ["kd_positive", "kd_normalised", "kd_uniform"], "probabilities")]
    graph.node.extend(helper.make_node(op, inputs, [out], name=out) for op, inputs, out in steps)
    graph.node.append(helper.make_node("ArgMax", ["probabilities"], ["kd_index"], name="kd_index", axis=1, keepdims=0))
    graph.node.append(helper.make_node("Gather", ["kd_classes", "kd_index"], ["label"], name="label", axis=0))
    graph.ClearField("output")
    graph.output.extend([helper.make_tensor_value_info("probabilities", 1, [None, k]), helper.make_tensor_value_info(
        "label", helper.np_dtype_to_tensor_dtype(constants["classes"].dtype), [None])])
    if not any(o.domain in ("", "ai.onnx") for o in proto.opset_import):  # CatBoost's file has none
        proto.opset_import.append(helper.make_opsetid("", OPSET[""]))
    return proto


def _label_array(classes: np.ndarray) -> np.ndarray:
    """``classes`` as an ONNX label tensor holds them: strings, int64 or float32."""
    if classes.dtype.kind in "OUS":
        return classes.astype(str).astype(object)
    return classes.astype(np.int64 if classes.dtype.kind in "iub" else np.float32)


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new


def _probabilities_first(proto, model) -> None:
    outputs = list(proto.graph.output)
    first = [o for o in outputs if o.name == "probabilities"]
    if not first or first[0].type.tensor_type.elem_type != 1:  # 1: float32
        raise _unsupported(model, f"its ONNX outputs ({', '.join(o.name for o in outputs)}) hold no float "
                                  f"'probabilities' tensor")
    proto.graph.ClearField("output")
    proto.graph.output.extend(first + [o for o in outputs if o.name != "probabilities"])


def _check_rows(x_check, n_features: int) -> np.ndarray:
    if x_check is None:
        return np.random.default_rng(0).standard_normal((64, n_features)).astype(np.float32)
    try:
        x = np.asarray(x_check, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"x_check must hold numbers, got {type(x_check).__name__} ({exc})") from exc
    if x.ndim != 2 or x.shape[1] != n_features or not len(x):
        raise ValueError(f"x_check must hold rows of shape (n_rows >= 1, {n_features}), got shape {x.shape}")
    return x


def _parity(model, sess, x: np.ndarray) -> float:
    """Largest |difference| between ``predict_proba`` on the rows ``x`` and the ONNX probabilities
    on ``x`` cast to float32, run as one batch and row by row (which exercises the dynamic batch
    axis); see :data:`PROBA_TOLERANCE`."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    whole = sess.run(["probabilities"], {"input": x32})[0]
    single = np.concatenate([sess.run(["probabilities"], {"input": x32[i:i + 1]})[0] for i in range(min(len(x), 8))])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        ref = np.asarray(model.predict_proba(x), dtype=np.float64)
    if ref.shape != whole.shape:
        raise ParityError(f"{_name(model)}: the ONNX model gives probabilities of shape {whole.shape}, "
                          f"predict_proba {ref.shape}")
    return float(max(np.abs(whole - ref).max(), np.abs(single - ref[:len(single)]).max()))
