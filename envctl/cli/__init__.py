"""The command-line interface: thin typer modules over the core modules."""
