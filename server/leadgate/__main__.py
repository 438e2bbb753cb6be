"""`python -m leadgate` runs the command line."""

from leadgate.cli import main

raise SystemExit(main())
