"""self/next/previous links for offset-paged Bundles (`_count` and `_offset`)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

PAGING_PARAMS = frozenset({"_count", "_offset"})


def page_links(endpoint: str, params: Sequence[tuple[str, str]], *, count: int, offset: int,
               shown: int, total: int | None) -> list[tuple[str, str]]:
    """Links for the page at `offset`; `next` only when more results exist."""
    kept = [(k, v) for k, v in params if k not in PAGING_PARAMS]

    def url(at: int) -> str:
        return f"{endpoint}?{urlencode(kept + [('_count', str(count)), ('_offset', str(at))])}"

    links = [("self", url(offset))]
    more = (offset + shown < total) if total is not None else shown >= count
    if more and count > 0:
        links.append(("next", url(offset + count)))
    if offset > 0:
        links.append(("previous", url(max(0, offset - count))))
    return links
