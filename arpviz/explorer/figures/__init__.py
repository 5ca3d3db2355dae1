"""Plotly figures of the app, one module per page family, all in one palette.

- :mod:`~arpviz.explorer.figures.explore`: Explore and RP against ARP (an :class:`ExploreView`);
- :mod:`~arpviz.explorer.figures.history`: Training (a :class:`TrainingRecord` per run);
- :mod:`~arpviz.explorer.figures.appendix`: Appendix A (an :class:`~arpviz.appendix.Analysis`);
- :mod:`~arpviz.explorer.figures.palette`: the colours every figure uses.
"""
