"""``python -m lars_ref`` is the same command as ``lars-ref`` (see :mod:`lars_ref.cli`)."""
from lars_ref.cli import main

raise SystemExit(main())
