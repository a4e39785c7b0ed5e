"""Allow ``python -m vmxlint``."""
from vmxlint.cli import run

run()
