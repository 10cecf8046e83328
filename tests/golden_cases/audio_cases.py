"""Runners for the audio-side golden cases (filled in with the audio port)."""

from tests.golden_cases import RunnerEntry

RUNNERS: list[RunnerEntry] = []
