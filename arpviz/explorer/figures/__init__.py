"""Plotly figures of the app, one module per page family, all in one palette.

- :mod:`~arpviz.explorer.figures.explore`: Explore and RP against ARP (an :class:`ExploreView`);
- :mod:`~arpviz.explorer.figures.history`: Training (a :class:`TrainingRecord` per run);
- :mod:`~arpviz.explorer.figures.appendix`: Appendix A (an :class:`~arpviz.appendix.Analysis`);
- the colours every figure uses come from :mod:`arpviz.palette` (core: the batch command's
  overlays use them too).
"""
