"""Deep-to-shallow self-distillation ("Be Your Own Teacher") on digits: auxiliary heads on two
inner layers learn from the network's own output during training and are dropped afterwards.
Run: ``python examples/self_distillation.py``."""

import torch

import kdistill
from kdistill.models import cnn, count_params

data = kdistill.load_dataset("digits", seed=0)
torch.manual_seed(0)
student = cnn(data.input_shape, data.num_classes, channels=(8, 16), hidden=32)
size = count_params(student)
kdistill.self_distill(student, data, taps=["features.3", "features.7"], epochs=15)
assert count_params(student) == size  # the heads are not part of the student
print(f"test accuracy {kdistill.evaluate(student, data.test, data.classes)['accuracy']:.3f} "
      f"with {size} parameters")
