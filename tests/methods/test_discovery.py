"""A method is one file: a module dropped into ``kdistill/methods`` is registered, documented and
covered by the contract suite, with no other file edited."""

import os
import subprocess
import sys
from pathlib import Path

import kdistill.methods

METHODS = Path(kdistill.methods.__file__).parent
ROOT = Path(__file__).parents[2]


def test_a_copy_of_kd_under_a_new_name_is_registered_and_passes_the_contract_suite():
    copy = METHODS / "kdcopy_discovery_test.py"
    assert not copy.exists()
    source = (METHODS / "kd.py").read_text()
    assert '@register("kd")' in source
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "KDISTILL_NO_SUBPROCESS": "1"}
    try:
        copy.write_text(source.replace('@register("kd")', '@register("kdcopy")'))
        listed = subprocess.run([sys.executable, "-c", "from kdistill import methods; "
                                 "print(methods.available()); print(methods.describe()['kdcopy'])"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert "'kdcopy'" in listed.stdout and "'kd'" in listed.stdout
        assert "Options: temperature=4.0" in listed.stdout
        suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(ROOT / "tests" / "methods" / "test_contract.py"), "-k", "kdcopy"],
                               capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
        assert suite.returncode == 0, suite.stdout[-2000:]
        assert "1 passed" in suite.stdout  # the contract case of the new method ran, from its own file
    finally:
        copy.unlink(missing_ok=True)
    assert "kdcopy" not in kdistill.methods.available()  # this process never saw it
