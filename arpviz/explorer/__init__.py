"""The app-facing library: what the Streamlit pages call (no Streamlit here).

- :mod:`~arpviz.explorer.catalog`: checkpoints (where from, which), model cards, training
  records and the choice of runs;
- :mod:`~arpviz.explorer.inputs`: images as the network sees them (uploads, SynthBirds samples,
  probe images; one centre-crop geometry);
- :mod:`~arpviz.explorer.session`: live steering of one image on one model (`LiveSession`, the
  stage controls and their overrides, the plain results);
- :mod:`~arpviz.explorer.figures`: plotly figures, one module per page family, one palette.

See docs/architecture.md.
"""
