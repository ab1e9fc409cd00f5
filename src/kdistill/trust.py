"""What a skops file may hold: the types kdistill trusts, and the names no file is ever trusted with.

Read by :mod:`kdistill.weights` (the one place that reads model files) and by the experiment schema's
``trusted:`` check; the trust model is in docs/background/trust.md.
"""

from __future__ import annotations

from collections.abc import Iterable

# Types outside skops' defaults that kdistill's own models and the usual teachers and students
# hold: trees and forests, gradient boosting, MLPs, nearest neighbours, DistilledClassifier, and
# the LightGBM, XGBoost and CatBoost classifiers (each booster's state is its own model text or
# bytes, parsed by its library; LightGBM keeps its best scores in an OrderedDict), and
# NativeCategoricals around one of them.
TRUSTED_TYPES = (
    "kdistill.sklearn.DistilledClassifier",
    "kdistill.categoricals.NativeCategoricals",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "collections.OrderedDict",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.basic.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.core.Booster",
    "catboost.core.CatBoostClassifier",
)

# Modules whose functions and types reach the processes, shell, file system, network, imports or
# the interpreter itself: ``trusted`` never names them (a skops file could call them on load),
# nor the builtins that evaluate code, import, open files or reach attributes by name.
NEVER_TRUSTED_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "shutil", "importlib", "imp",
    "zipimport", "pkgutil", "runpy", "sys", "pty", "tty", "termios", "fcntl", "resource", "signal", "socket",
    "ssl", "select", "selectors", "asyncio", "ctypes", "_ctypes", "cffi", "pickle", "_pickle", "cPickle",
    "copyreg", "marshal", "shelve", "dill", "cloudpickle", "joblib", "code", "codeop", "pdb", "bdb", "inspect",
    "gc", "types", "io", "_io", "pathlib", "tempfile", "glob", "fileinput", "multiprocessing", "threading",
    "_thread", "concurrent", "webbrowser", "urllib", "http", "ftplib", "smtplib", "telnetlib", "platform",
    "sysconfig", "site", "operator", "functools", "timeit", "trace"})
NEVER_TRUSTED_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "open", "getattr", "setattr", "delattr", "globals", "locals",
    "vars", "breakpoint", "input", "exit", "quit", "help", "__loader__", "__build_class__"})


def check_trusted(trusted: Iterable[str], what: str = "trusted") -> list[str]:
    """The ``trusted`` type names, refused when one names a process, shell, file-system, import
    or interpreter primitive (see :data:`NEVER_TRUSTED_MODULES`): trusting such a name would let
    a skops file run it while it is loaded."""
    if isinstance(trusted, (str, bytes)):
        raise TypeError(f"{what} must be a list of type names, e.g. ['mypackage.models.MyClassifier'], got the "
                        f"string {trusted!r}")
    names = list(trusted)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"{what} holds {name!r}; give fully qualified type names, e.g. "
                            f"'mypackage.models.MyClassifier'")
        parts = name.strip().split(".")
        root = parts[0].lstrip("_") if parts[0] not in ("__builtin__", "__builtins__") else "builtins"
        builtin = (root == "builtins" or len(parts) == 1) and parts[-1] in NEVER_TRUSTED_BUILTINS
        if root in NEVER_TRUSTED_MODULES or parts[0] in NEVER_TRUSTED_MODULES or builtin:
            raise ValueError(f"{what} names {name!r}, a process, shell, file-system, import or interpreter "
                             f"primitive: kdistill never trusts those (a file that holds one could run it while it "
                             f"is loaded); trust only the model types the file is known to hold, e.g. "
                             f"'mypackage.models.MyClassifier'")
    return names
