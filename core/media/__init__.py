"""ffmpeg as a child process: finding it, and a watchdog so no input can make it hang a job.

In ``core`` because both the audio front-end (decoding containers libsndfile does not read) and the
video writer (``exporters/video.py``) run it.
"""
