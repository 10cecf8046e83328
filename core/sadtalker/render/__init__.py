"""SadTalker's face renderer: MappingNet plus the face-vid2vid networks, keypoint maths and the loop.

Networks here are plain ``nn.Module`` s whose ``state_dict()`` equals the official layouts key for
key and in order, so official files load unchanged. :mod:`.models` owns checkpoint loading and
devices, :mod:`.animate` runs the per-frame loop, :mod:`.renderer` is the streaming wrapper callers use.
"""
