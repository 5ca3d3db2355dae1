"""Which SynthBirds sample a page opens on: one the network gets right, with a medium-size bird,
so the first view shows the method working on a typical case, not a failure or an outlier."""

from __future__ import annotations

import torch

from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer.inputs import sample_count, synth_sample
from arpviz.models import MSGN

__all__ = ["MEDIUM", "default_sample"]

#: The bird's box height, as a share of the input, that counts as medium.
MEDIUM: tuple[float, float] = (0.3, 0.6)
_CHUNK = 8


@torch.no_grad()
def default_sample(model: MSGN, meta: CheckpointMeta, candidates: int = 48) -> int:
    """The first of the first ``candidates`` samples of the checkpoint's evaluation split that
    ``model`` classifies correctly and whose bird's box height is :data:`MEDIUM`; else the first
    correct one; else 0. Also 0 for a checkpoint without SynthBirds samples."""
    count = min(sample_count(meta), max(int(candidates), 0))
    device = next(model.parameters()).device
    first_correct = None
    for start in range(0, count, _CHUNK):  # stop at the first good one: usually the first chunk
        samples = [synth_sample(meta, i) for i in range(start, min(start + _CHUNK, count))]
        logits = model(torch.cat([s.tensor for s in samples]).to(device))
        for offset, (sample, pred) in enumerate(zip(samples, logits.argmax(1).tolist(),
                                                     strict=True)):
            if sample.truth is None or pred != sample.truth.label:
                continue
            _, y1, _, y2 = sample.truth.box
            if MEDIUM[0] <= (y2 - y1) / meta.input_size <= MEDIUM[1]:
                return start + offset
            if first_correct is None:
                first_correct = start + offset
    return first_correct or 0
