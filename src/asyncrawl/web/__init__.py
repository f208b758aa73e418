"""Sources for the web: a site crawl from seed URLs, a paged JSON API, and their helpers.

- :class:`SiteCrawl` (items: :class:`Page`; payloads: :class:`FetchedPage`) follows HTML links
  within allowed origins, respects robots.txt and follows redirects as counted hops.
- :class:`PagedJson` follows a JSON API's next links or cursors.
- :func:`follow_redirect` / :func:`redirect_target` turn a 3xx answer into a discovered item;
  :func:`extract_links` reads an HTML page's links.

URL normalisation lives in :mod:`asyncrawl.urls`, robots.txt in :mod:`asyncrawl.robots`.
"""

from .links import PageLinks, extract_links, html_text
from .paged import PagedJson
from .redirects import REDIRECT_STATUSES, follow_redirect, redirect_target
from .site import FetchedPage, Page, SiteCrawl

__all__ = [
    "REDIRECT_STATUSES",
    "FetchedPage",
    "Page",
    "PageLinks",
    "PagedJson",
    "SiteCrawl",
    "extract_links",
    "follow_redirect",
    "html_text",
    "redirect_target",
]
