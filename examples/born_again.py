"""Born-again networks on digits: a CNN trained on labels teaches a copy of its own
architecture, which teaches the next generation. Run: ``python examples/born_again.py``."""

import torch

import kdistill
from kdistill.models import cnn

data = kdistill.load_dataset("digits", seed=0)


def make_student():
    return cnn(data.input_shape, data.num_classes, channels=(8, 16), hidden=32)


torch.manual_seed(0)
generation0 = make_student()
kdistill.fit(generation0, data, epochs=15)
print(f"generation 0: {kdistill.evaluate(generation0, data.test, data.classes)['accuracy']:.3f}")
result = kdistill.born_again(make_student, generation0, data, generations=3, epochs=15)
for g, model in enumerate(result.models, start=1):
    print(f"generation {g}: {kdistill.evaluate(model, data.test, data.classes)['accuracy']:.3f}")
