"""The docs cannot drift: the README stays short and its links resolve, the references are generated
from every field, option, flag and method, the public API has numpydoc docstrings, the example runner
fails where an example is wrong, and the built site loads nothing from the network."""

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest
from sybil import Sybil

from kdistill import methods
from kdistill.config.schema import Experiment
from kdistill.config.section import Section

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load(ROOT / "scripts" / "docs_reference.py", "docs_reference")


def test_the_readme_is_short_and_every_link_in_it_resolves():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert len(links) > 20
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []


def _sections(cls=Experiment, seen=None):
    seen = seen if seen is not None else {}
    seen[cls] = True
    for field in cls.model_fields.values():
        for sub in reference._sections(field.annotation):
            if sub not in seen:
                _sections(sub, seen)
    return list(seen)


def test_every_key_of_an_experiment_file_is_documented_in_the_generated_schema():
    page = reference.schema()
    sections = _sections()
    assert len(sections) >= 15 and all(issubclass(s, Section) for s in sections)
    for cls in sections:
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no docstring: the docs would show no meaning"
            assert f"| `{name}` |" in page


def test_the_generated_cli_training_results_and_methods_pages_list_everything():
    from kdistill.cli import build_parser
    from kdistill.engine import TrainConfig
    from kdistill.report.fields import SECTIONS

    cli = reference.cli()
    commands = [c for c, _, _ in reference._commands(build_parser(), "kdistill")]
    assert {"kdistill run", "kdistill export", "kdistill cache clear"} <= set(commands)
    assert all(f"### `{c}`" in cli for c in commands) and "`--resume`" in cli
    training = reference.train_options()
    assert all(f"| `{f}` |" in training for f in TrainConfig.__dataclass_fields__)
    results = reference.results()
    assert all(f"| `{key}` |" in results for fields in SECTIONS.values() for key in fields)
    listed = reference.methods()
    for name in methods.available():
        cls = methods.method_class(name)
        assert f"| `{name}` |" in listed and cls.family, name
        assert cls.paper or name == "ce", f"method {name!r} names no paper"


def test_an_unknown_generated_section_is_an_error():
    assert reference.on_page_markdown("a <!-- generated: methods --> b").count("| `kd` |") == 1
    with pytest.raises(ValueError, match="unknown generated section 'nope'"):
        reference.on_page_markdown("<!-- generated: nope -->")


def test_every_function_of_the_api_reference_has_a_numpydoc_parameters_section():
    names = re.findall(r"^::: (\S+)", (ROOT / "docs/reference/api.md").read_text(), re.M)
    assert len(names) > 25
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        doc = inspect.getdoc(obj) or ""
        assert doc, dotted
        takes = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
        if inspect.isfunction(obj) and takes:
            assert re.search(r"^Parameters\n-+$", doc, re.M), f"{dotted}: no numpydoc Parameters section"


def _run_page(tmp_path, text: str):
    conftest = _load(ROOT / "conftest.py", "docs_conftest")
    page = tmp_path / "page.md"
    page.write_text(text)
    sybil = Sybil(parsers=[conftest.parse], path=str(tmp_path), patterns=["*.md"],
                  setup=conftest._setup, teardown=conftest._teardown)
    document = sybil.parse(page)
    conftest._setup(document.namespace)
    try:
        for example in document:
            example.evaluate()
    finally:
        conftest._teardown(document.namespace)


@pytest.mark.parametrize("text, error", [
    ("```python\nassert 1 + 1 == 3\n```\n", AssertionError),
    ("<!-- tiny: epochs=40 => epochs=1 -->\n```python\nepochs = 4\n```\n", AssertionError),  # a drifted directive
    ("```console\n$ kdistill validate nothing.yaml\n```\n", AssertionError),               # exits 2, not 0
    ("```bash\nmake test\n```\n", AssertionError),                                        # not runnable, not skipped
    ("```yaml\na: [1\n```\n", Exception),
])
def test_the_example_runner_fails_where_an_example_is_wrong(tmp_path, text, error):
    with pytest.raises(error):
        _run_page(tmp_path, text)


def test_the_example_runner_runs_files_commands_and_skips_only_what_it_is_told(tmp_path):
    _run_page(tmp_path, '```yaml title="x.yaml"\nname: demo\n```\n\n<!-- skip: next "a test cannot" -->\n'
                        '```python\nraise SystemExit(3)\n```\n\n<!-- exits: 2 -->\n```console\n'
                        '$ kdistill validate x.yaml\n```\n\n```python\nfrom pathlib import Path\n'
                        'assert Path("x.yaml").read_text() == "name: demo\\n"\n```\n')


def test_the_offline_check_finds_remote_assets(tmp_path):
    check = _load(ROOT / "scripts" / "check_site_offline.py", "check_site_offline")
    (tmp_path / "index.html").write_text('<a href="https://example.org">a link is fine</a>')
    assert check.remote_assets(tmp_path) == []
    (tmp_path / "page.html").write_text('<link rel="stylesheet" href="https://fonts.googleapis.com/css">'
                                        '<script src="//cdn.example/x.js"></script>')
    (tmp_path / "a.css").write_text("@font-face { src: url(https://fonts.gstatic.com/x.woff2) }")
    assert len(check.remote_assets(tmp_path)) == 3


def test_a_console_block_checks_the_output_it_shows(tmp_path):
    _run_page(tmp_path, '<!-- exits: 2 -->\n```console\n$ kdistill validate nothing.yaml\nerror: ...\n```\n')
    with pytest.raises(AssertionError, match="did not print the line shown under it"):
        _run_page(tmp_path, '<!-- exits: 2 -->\n```console\n$ kdistill validate nothing.yaml\nall is well\n```\n')
