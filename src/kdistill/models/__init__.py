"""The small model zoo (MLP, VGG-style CNN), size accounting, and building a model from a spec
(a zoo name, ``package.module:factory`` or a scikit-learn estimator class, its options, freezing layers)."""

from .build import (
                    ZOO,
                    build_model,
                    freeze,
                    freeze_layers,
                    importable,
                    is_estimator_class,
                    is_sklearn_model,
                    layer_names,
                    option_names,
                    resolve_factory,
                    unfreeze,
)
from .zoo import cnn, count_params, mlp, size_mb

__all__ = ["ZOO", "build_model", "cnn", "count_params", "freeze", "freeze_layers", "importable", "is_estimator_class",
           "is_sklearn_model", "layer_names", "mlp", "option_names", "resolve_factory", "size_mb", "unfreeze"]
