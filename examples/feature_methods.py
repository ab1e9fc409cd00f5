"""Feature- and relation-based distillation on digits: KD plus a FitNet hint, then AT and RKD.

Layers are named as in ``model.named_modules()``; print ``kdistill.taps.module_names(model)``
to see them. Run: ``python examples/feature_methods.py`` (about 15 s on a laptop CPU).
"""

import torch

import kdistill
from kdistill.models import cnn

data = kdistill.load_dataset("digits", seed=0)
shape, k = data.input_shape, data.num_classes

torch.manual_seed(0)
teacher = cnn(shape, k, channels=(32, 64, 128), hidden=128)
kdistill.fit(teacher, data, epochs=15)
print(f"teacher: {kdistill.evaluate(teacher, data.test, data.classes)['accuracy']:.3f}")

objectives = {
    "kd + fitnet": [("ce", 0.1), ("kd", 0.9, {"temperature": 4}),
                    ("fitnet", 10.0, {"student": "features.3", "teacher": "features.3"})],
    "ce + at": [("ce", 1.0), ("at", 1.0, {"student": ["features.3", "features.7"],
                                          "teacher": ["features.3", "features.7"]})],
    "ce + rkd": [("ce", 1.0), ("rkd", 1.0, {"student": "classifier.2", "teacher": "classifier.2"})],
}
for name, objective in objectives.items():
    torch.manual_seed(1)
    student = cnn(shape, k, channels=(8, 16), hidden=32)
    kdistill.distill(teacher, student, data, objective=objective, epochs=15)
    scores = kdistill.evaluate(student, data.test, data.classes, teacher=teacher)
    print(f"{name:12s} accuracy {scores['accuracy']:.3f}  agreement with teacher {scores['agreement']:.3f}")
