"""The model manager: which weight files exist, where they live, downloading and verifying them.

Engines ask the store for paths; nothing here imports torch.
"""

from talkbridge.core.weights.catalog import CATALOG, WeightFile, load_catalog
from talkbridge.core.weights.store import FileStatus, WeightStore, default_store_dir

__all__ = ["CATALOG", "WeightFile", "load_catalog", "FileStatus", "WeightStore", "default_store_dir"]
