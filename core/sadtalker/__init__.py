"""The SadTalker port: networks, checkpoint loading and the audio-to-coefficient pipeline.

Networks under :mod:`.nets` are plain ``nn.Module`` s whose ``state_dict()`` matches the official
checkpoints key for key; wrappers own loading and devices; pipelines compose wrappers.
"""
