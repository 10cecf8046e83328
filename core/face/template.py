"""The 5-point 3-D face template the alignment fits against, and the 68 -> 5 landmark reduction.

The template is the official mean-face 68-point set reduced with the same rule as image landmarks
(eye centres from the eye corners, nose tip, mouth corners); only these 15 numbers are needed at
inference, so they are carried as constants instead of the original ``.mat`` file.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_5P_3D = np.array(
    [
        [-0.31148657, 0.29036078, 0.13377953],
        [0.30979887, 0.28972036, 0.13179526],
        [0.0032535, -0.04617932, 0.55244243],
        [-0.25216928, -0.38133916, 0.22405732],
        [0.2484662, -0.38128236, 0.22235769],
    ],
    dtype=np.float32,
)
TEMPLATE_5P_3D.setflags(write=False)

ALIGNED_SIZE = 224  # the recon net's input
RESCALE_FACTOR = 102.0  # target scale of the fitted template in aligned pixels


def landmarks_68_to_5(lm68: np.ndarray) -> np.ndarray:
    """(68, k) -> (5, k): left eye centre, right eye centre, nose tip, left and right mouth corners.

    Means are taken in the input's dtype (float32 for detector output), as the official code does.
    """
    lm68 = np.asarray(lm68)
    if lm68.shape[0] != 68:
        raise ValueError(f"expected 68 landmarks, got {lm68.shape[0]}")
    return np.stack(
        [
            np.mean(lm68[[36, 39]], axis=0),
            np.mean(lm68[[42, 45]], axis=0),
            lm68[30],
            lm68[48],
            lm68[54],
        ]
    )
