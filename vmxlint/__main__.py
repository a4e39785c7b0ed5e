"""Allow ``python -m vmxlint``."""
from vmxlint.cli import main

raise SystemExit(main())
