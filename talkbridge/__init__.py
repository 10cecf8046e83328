"""talkbridge: audio-driven face animation for 3D artists.

The engines live in :mod:`talkbridge.core`, the sidecar in :mod:`talkbridge.bridge`, file formats in
:mod:`talkbridge.exporters`. Importing this package is cheap: nothing here pulls in torch.
"""

from talkbridge._version import __version__

__all__ = ["__version__"]
