"""The Streamlit side of the app: the one package besides ``pages/`` that imports Streamlit.

- :mod:`~arpviz.app.state`: what the user is looking at, typed (:class:`AppState`), and
  :func:`~arpviz.app.state.bind`, the one way a widget shows and changes it;
- :mod:`~arpviz.app.sidebar`: the checkpoint, device and model card, and the app's frame;
- :mod:`~arpviz.app.resources`: cached loaders, progress bars, the run timer;
- :mod:`~arpviz.app.images`, :mod:`~arpviz.app.controls`, :mod:`~arpviz.app.outputs`: the
  image control, the stage controls and the outputs the pages share;
- one module of parts per page family: :mod:`~arpviz.app.explore`, :mod:`~arpviz.app.compare`,
  :mod:`~arpviz.app.gallery`, :mod:`~arpviz.app.adaptivity`, :mod:`~arpviz.app.appendix`,
  :mod:`~arpviz.app.training` (with :mod:`~arpviz.app.training_probes`),
  :mod:`~arpviz.app.retrieval`.

Shipped in the wheel; it needs the ``app`` extra (Streamlit, plotly).
"""
