"""Audio front-end: decode any speech file to 16 kHz mono, and SadTalker's log-mel windows.

``load_audio`` / ``AudioClip`` read files; :mod:`.mel` computes the normalised 80-bin log-mel and
the per-video-frame 16-step windows exactly as the official SadTalker code does.
"""

from talkbridge.core.audio.loading import SAMPLE_RATE, AudioClip, load_audio, load_clip

__all__ = ["SAMPLE_RATE", "AudioClip", "load_audio", "load_clip"]
