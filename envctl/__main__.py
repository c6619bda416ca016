"""``python -m envctl``."""

from envctl.cli.main import run

run()
