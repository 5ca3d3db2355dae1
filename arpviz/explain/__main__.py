"""``python -m arpviz.explain`` (:func:`arpviz.explain.cli.main`)."""

from arpviz.explain.cli import main

raise SystemExit(main())
