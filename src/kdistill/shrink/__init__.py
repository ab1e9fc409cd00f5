"""Shrink: the toolkit builds the student — pruned from the trained teacher or scaled from a
family, searched under a budget of parameters, MACs, file size or ONNX Runtime latency."""
