"""An ensemble of unlike teachers on digits: a CNN and a random forest, their probabilities
averaged with weights (each softened by its own temperature first), distilled into a small CNN.
Run: ``python examples/ensemble_teacher.py``."""

import torch
from sklearn.ensemble import RandomForestClassifier

import kdistill
from kdistill.models import cnn

data = kdistill.load_dataset("digits", seed=0, train_fraction=0.25)
x_train = data.train.x.flatten(1).numpy()  # the forest sees the same images as 64 features

torch.manual_seed(0)
net = cnn(data.input_shape, data.num_classes, channels=[32, 64], hidden=128)
kdistill.fit(net, data, epochs=30, lr=3e-3, patience=8)
forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(x_train, data.train.y.numpy())

ensemble = kdistill.EnsembleTeacher([net, forest], weights=[0.7, 0.3], temperatures=[1.0, 0.5])


def student():
    torch.manual_seed(1)
    return cnn(data.input_shape, data.num_classes, channels=[8, 16], hidden=32)


alone, distilled = student(), student()
kdistill.fit(alone, data, epochs=40, lr=3e-3, patience=10)
kdistill.distill(ensemble, distilled, data, alpha=0.7, temperature=4, epochs=40, lr=3e-3, patience=10)

for name, model in [("CNN teacher", net), ("forest teacher", kdistill.as_teacher(forest)),
                    ("ensemble teacher", ensemble), ("student alone", alone), ("student from ensemble", distilled)]:
    r = kdistill.evaluate(model, data.test, data.classes, teacher=ensemble)
    print(f"{name:22s} test accuracy {r['accuracy']:.3f}  agreement with the ensemble {r['agreement']:.3f}")
