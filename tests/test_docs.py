"""The user guide builds (mkdocs, strict) and the examples run in their fast mode."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the docs extra")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_in_fast_mode(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(script), "--fast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip()  # an example shows its result


def test_gallery_script_writes_svg_figures(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docs" / "gallery" / "make_gallery.py"),
            "--fast",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert written == [
        "exits-mnist1d.svg",
        "fronts-mnist1d.svg",
        "separation-mnist1d.svg",
        "theorem-mnist1d.svg",
    ]
    for path in tmp_path.glob("*.svg"):
        text = path.read_text()
        assert text.startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")
    # the gallery page shows every figure the full run writes
    page = (ROOT / "docs" / "gallery.md").read_text()
    for name in written + ["fronts-digits.svg", "fronts-minilm-reviews.svg"]:
        assert f"(gallery/{name})" in page and (ROOT / "docs" / "gallery" / name).exists()


def test_readme_quick_start_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- quick-start: run by tests/test_docs.py -->", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "policy.json").exists() and done.stdout.strip()


def _marked_blocks(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text()
    blocks = text.split("<!-- run by tests/test_docs.py -->")[1:]
    return [block.split("```python\n", 1)[1].split("```", 1)[0] for block in blocks]


MARKED_BLOCKS = [
    (page, i, code)
    for page in ("data.md", "guarantees.md")
    for i, code in enumerate(_marked_blocks(page))
]


@pytest.mark.parametrize(
    "page, index, code", MARKED_BLOCKS, ids=[f"{p}-{i}" for p, i, _ in MARKED_BLOCKS]
)
def test_marked_page_snippets_run(page, index, code, tmp_path):
    if "import torch" in code:
        pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()


CORE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "eeopt").rglob("*.py")
    if "torch" not in p.parts and p.name != "__main__.py"
)


@pytest.mark.parametrize("name", CORE_MODULES)
def test_docstring_examples_print_what_they_say(name):
    """Every ``>>>`` example in the core's docstrings gives the output written under it (a
    folded line in risk's module docstring had failed unnoticed)."""
    import doctest
    import importlib

    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
