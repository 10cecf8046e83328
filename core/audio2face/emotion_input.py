"""The network's emotion input: the model's fixed implicit vector, then the 10 explicit weights.

The implicit part (16 values) is one row of the model's emotion database, chosen by the model's
``source_shot``/``source_frame`` and constant for the clip; the explicit part is the job's emotion at
each frame, reordered from talkbridge's :data:`~talkbridge.core.motion.EMOTIONS` into the order the
model's ``network_info.json`` lists, so a model that orders them differently still hears the right one.
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.errors import CheckpointError
from talkbridge.core.motion import EMOTIONS


def explicit_order(names: tuple[str, ...]) -> np.ndarray:
    """Column of talkbridge's emotion table feeding each of the network's explicit inputs."""
    unknown = [name for name in names if name not in EMOTIONS]
    if unknown:
        raise CheckpointError(
            f"network_info.json names explicit emotions talkbridge does not know: {', '.join(unknown)}"
        )
    return np.asarray([EMOTIONS.index(name) for name in names], np.int64)


def network_emotions(implicit: np.ndarray, explicit: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(T, 1, implicit + explicit) float32 emotion input for ``explicit`` (T, 10) in EMOTIONS order."""
    explicit = np.asarray(explicit, np.float32)
    order = explicit_order(names)
    rows = explicit.shape[0]
    out = np.empty((rows, 1, implicit.size + order.size), np.float32)
    out[:, 0, : implicit.size] = implicit.reshape(1, -1)
    out[:, 0, implicit.size :] = explicit[:, order]
    return out
