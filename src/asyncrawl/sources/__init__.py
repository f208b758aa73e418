"""Sources: what to crawl and how to read its answers."""
