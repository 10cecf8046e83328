"""Pipelines that compose the engines' wrappers into whole jobs (portrait + speech -> frames + motion)."""
