"""docs/components.md is generated from the registry and the committed conformance reports: it must not drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_components", DOCS / "generate_components.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_components_page_is_up_to_date():
    generator = _generator()
    assert generator.main(["--check"]) == 0, "run: python docs/generate_components.py"


def test_components_page_lists_every_builtin_component():
    from polynn import _registry

    text = (DOCS / "components.md").read_text()
    for kind in _generator().KINDS:
        for cls in _registry.builtin_specs(kind):
            assert f"| `{cls.name}`" in text, (kind, cls.name)


def test_components_page_headings_and_legend():
    text = (DOCS / "components.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Layers", "## Activations", "## Losses", "## Metrics", "## Optimizers", "## Schedules",
                        "## Initializers", "## Regularizers", "## Constraints"]
    # a pass showing a relative deviation of 1 is explained where the cells are
    assert "`pass (1, 1e+00)` is a reference value close to 0" in text


def test_plugins_guide_does_not_recommend_the_private_spec_decorator():
    text = (DOCS / "plugins.md").read_text()
    assert "`polynn._spec.spec`-style" not in text
    assert "Declare it with a plain\n`@dataclasses.dataclass(frozen=True)`" in text
