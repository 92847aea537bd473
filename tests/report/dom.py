"""Reading a DOM dumped by the browser: the text inside an element (by id) and how many of each tag."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Dom(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self._texts: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        found = dict(attrs)
        self.attrs.append((tag, found))
        if tag not in _VOID:
            self._open.append((tag, found.get("id")))
            if found.get("id"):
                self._texts.setdefault(str(found["id"]), [])

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self._texts[ident].append(data)

    def text(self, ident: str) -> str:
        """The text inside the element with this id: its text nodes joined by a space, whitespace runs made one."""
        assert ident in self._texts, f"no element with id {ident!r}"
        return " ".join(" ".join(self._texts[ident]).split())
