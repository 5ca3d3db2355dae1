"""``python -m arpviz.analysis`` (:func:`arpviz.analysis.cli.main`)."""

from arpviz.analysis.cli import main

raise SystemExit(main())
