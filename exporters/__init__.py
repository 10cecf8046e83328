"""File formats for motion: glTF/GLB animation, coefficient files, video. Pure Python, no bpy."""
