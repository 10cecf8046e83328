"""Running talkbridge jobs on a Ray cluster (the optional ``talkbridge[ray]`` extra).

:mod:`.session` connects to (or starts) Ray, :mod:`.pool` places one job actor per GPU (or per node
without GPUs), :mod:`.actors` are those actors (each keeps its loaded engines between jobs and
streams a job's steps back with Ray streaming generators), :mod:`.batch_backend` runs
``talkbridge batch`` rows on them and :mod:`.runner` serves sidecar jobs on them
(``talkbridge serve --ray``). Nothing outside this package imports ray.
"""
