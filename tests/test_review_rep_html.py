"""Review of the HTML report in the real headless browser: a long module name stays inside the page."""

from __future__ import annotations

from pathlib import Path

from test_html_browser import Chrome, Page, chrome  # noqa: F401 -- `chrome` is the module-scoped fixture

from modeldebug import Report
from modeldebug.rules.base import Finding, Recommendation

LONG = "encoder." + "very_" * 120 + "deep_block"  # one unbreakable token, about 600 characters


def test_a_long_module_name_wraps_instead_of_widening_the_page(chrome: Chrome, tmp_path: Path) -> None:  # noqa: F811
    finding = Finding(code="ACT001", kind="dead_activations", category="activation", severity="high",
                      confidence=0.9, title=f"100% of the units of {LONG} (ReLU) are dead", location=LONG,
                      description=f"The layer feeding it, {LONG}, outputs mean -10.", step=0,
                      evidence={"feeding_layer": LONG, "dead_fraction": 1.0},
                      recommendations=[Recommendation("fix", f"Re-initialise {LONG} with He initialisation.",
                                                      f"nn.init.zeros_(model.get_submodule('{LONG}').bias)")])
    path = tmp_path / "long.html"
    Report([finding], {"script": "train.py", "steps": 30}).to_html(path)
    page = Page(chrome, path)
    assert page.js("document.documentElement.getAttribute('data-ready')") == "1"
    width = page.js("document.documentElement.clientWidth")
    assert page.js("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    main_right = page.js("document.querySelector('main').getBoundingClientRect().right")
    outside = page.js(f"""[...document.querySelectorAll('main *')]
        .filter(e => !e.closest('pre') && e.getBoundingClientRect().right > {main_right} + 1)
        .map(e => e.tagName + ' ' + e.textContent.slice(0, 40))""")
    assert outside == []  # a fix's code scrolls inside its own box; nothing else sticks out
    # short codes in the ranked table are not broken over two lines to make room
    code, problem = page.js("""[...document.querySelectorAll('table.ranked td')].slice(2, 4)
        .map(td => td.firstElementChild.getBoundingClientRect().height)""")
    assert code <= 20 and problem > 3 * code  # ACT001 on one line; the long title wraps
    assert page.messages() == []
