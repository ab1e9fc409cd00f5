"""Deep mutual learning on digits: two small CNNs learn together from scratch, no teacher.

Run: ``python examples/mutual_learning.py`` (a few seconds).
"""

import torch

import kdistill
from kdistill.models import cnn

data = kdistill.load_dataset("digits", seed=0)
torch.manual_seed(0)
peers = [cnn(data.input_shape, data.num_classes, channels=(8, 16), hidden=32) for _ in range(2)]
result = kdistill.mutual(peers, data, epochs=15)
for i, peer in enumerate(result.models):
    print(f"peer {i}: test accuracy {kdistill.evaluate(peer, data.test, data.classes)['accuracy']:.3f}")
