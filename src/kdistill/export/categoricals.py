"""ONNX export of :class:`~kdistill.categoricals.NativeCategoricals`: the booster's graph with
the block-to-code step put in front of it, so that the file takes the one-hot encoded rows the
model takes.

Per categorical block: ``ArgMax`` gives the code of its hot column, ``ReduceMax > 0.5`` whether
one is hot, ``Where`` the code or NaN (a category unseen in training: missing); numeric columns
are sliced out as they are; ``Concat`` puts them in the booster's column order (the layout's).
onnxmltools' LightGBM and XGBoost converters unfold categorical splits into chains of equality
tests; the boosters whose converters cannot are refused by name (:data:`NO_NATIVE`).
"""

from __future__ import annotations

import numpy as np

from ..categoricals import HOT, booster

# Boosters whose native categoricals no converter exports, and why (CatBoost 1.2's writer refuses:
# "ONNX-ML format export does yet not support categorical features").
NO_NATIVE = {"catboost": "CatBoost's ONNX writer does not support categorical features"}


def refusal(model) -> str | None:
    """Why ``model`` (a :class:`NativeCategoricals`) cannot be exported, or ``None``."""
    reason = NO_NATIVE.get(booster(model.estimator_))
    if reason is None:
        return None
    return (f"{reason}; fit it on the one-hot columns instead (compare(..., categoricals='onehot'), or "
            f"categoricals: onehot under data.table in an experiment file)")


def with_codes(proto, model, n_features: int):
    """``proto``, the booster's ONNX model (its input ``input`` of the codes), taking instead the
    ``n_features`` one-hot encoded columns as ``input``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    (codes,) = graph.input  # replaced below by the one-hot input; the booster's nodes read the codes instead
    for node in graph.node:
        node.input[:] = ["kd_codes" if n == codes.name else n for n in node.input]
    constants = {"axis": np.array([1], np.int64), "nan": np.array([np.nan], np.float32),
                 "hot": np.array([HOT], np.float32)}
    nodes, columns = [], []
    for j, group in enumerate(model.layout):
        start, stop = group["columns"]
        constants.update({f"start{j}": np.array([start], np.int64), f"stop{j}": np.array([stop], np.int64)})
        block = f"kd_block{j}"
        nodes.append(helper.make_node("Slice", ["input", f"kd_start{j}", f"kd_stop{j}", "kd_axis"], [block],
                                      name=block))
        if group["kind"] == "categorical":
            nodes += [helper.make_node("ArgMax", [block], [f"kd_arg{j}"], name=f"kd_arg{j}", axis=1, keepdims=1),
                      helper.make_node("Cast", [f"kd_arg{j}"], [f"kd_code{j}"], name=f"kd_code{j}",
                                       to=TensorProto.FLOAT),
                      helper.make_node("ReduceMax", [block], [f"kd_max{j}"], name=f"kd_max{j}", axes=[1],
                                       keepdims=1),
                      helper.make_node("Greater", [f"kd_max{j}", "kd_hot"], [f"kd_known{j}"], name=f"kd_known{j}"),
                      helper.make_node("Where", [f"kd_known{j}", f"kd_code{j}", "kd_nan"], [f"kd_column{j}"],
                                       name=f"kd_column{j}")]
            block = f"kd_column{j}"
        columns.append(block)
    nodes.append(helper.make_node("Concat", columns, ["kd_codes"], name="kd_codes", axis=1))
    graph.initializer.extend(numpy_helper.from_array(v, f"kd_{n}") for n, v in constants.items())
    old = list(graph.node)
    graph.ClearField("node")
    graph.node.extend(nodes + old)  # topological order: the codes before the booster reads them
    graph.ClearField("input")
    graph.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features]))
    return proto
