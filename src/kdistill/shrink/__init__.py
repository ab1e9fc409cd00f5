"""Shrink: the toolkit builds the student — pruned from the trained teacher or scaled from a
family (:mod:`.candidates`), searched under a budget of parameters, MACs, file size or ONNX
Runtime latency (:mod:`.budget`), with weak candidates stopped early (:mod:`.search`, whose
:func:`~kdistill.shrink.search.shrink` is ``kdistill.shrink``; :mod:`.trials`), and its Pareto
front (:mod:`.pareto`); ``kdistill shrink EXPERIMENT`` (:mod:`.experiment`, :mod:`.command`).

The package imports nothing itself, so that the command line can register its command without
loading torch."""
