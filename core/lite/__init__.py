"""The weight-free "lite" engine: speech -> phones -> visemes -> ARKit-52, plus procedural blinks and pose.

It needs no downloaded weights (pocketsphinx ships its English acoustic model), so it is the engine a
fresh install runs, and it comes with its own mannequin head and a CPU preview renderer.
"""
