"""A Sphinx extension of the book's build (``_config.yml``: ``extra_extensions``): every page's scripts once.

Jupyter Book 1 emits Sphinx's ``env-before-read-docs`` twice, and sphinx-thebe and sphinx-togglebutton add their
inline configuration scripts on that event, so every page declared ``const THEBE_JS_URL`` twice and the browser
stopped at a ``SyntaxError`` (the second copy has file name ``""`` where the first has None, so Sphinx does not see
them as equal). Scripts with the same file or body and the same attributes are kept once, in their first place.
"""

from __future__ import annotations

from typing import Any


def _unique_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    unique: dict[tuple[str, int, tuple[tuple[str, str], ...]], Any] = {}
    for script in scripts:
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        unique.setdefault((str(getattr(script, "filename", script) or ""), getattr(script, "priority", 500),
                           attributes), script)
    scripts[:] = unique.values()  # in place: it is the builder's list, which later handlers add the page's own to


def setup(app: Any) -> dict[str, Any]:
    # early: the event stops at the first handler that returns a template name (the theme's)
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
