"""Reading Python package indexes directly: the simple API (PEP 691 JSON / PEP 503 HTML),
wheel metadata (PEP 658 files, or a wheel's METADATA through HTTP range requests), and the
release-matrix refresh built on them.  No typer or rich here: the CLI renders the results."""
