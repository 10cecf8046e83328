"""Maps the architecture folders at the repository root into the `talkbridge` namespace.

`core/`, `bridge/` and `exporters/` live at the root so the layout shows the data flow, but they
install only as `talkbridge.core`, `talkbridge.bridge` and `talkbridge.exporters`: nothing ever
installs a bare top-level `core`.
"""
from setuptools import find_packages, setup

NAMESPACE_ROOTS = {
    "talkbridge": "talkbridge",
    "talkbridge.core": "core",
    "talkbridge.bridge": "bridge",
    "talkbridge.exporters": "exporters",
}


def _packages() -> list[str]:
    found = []
    for namespace, folder in NAMESPACE_ROOTS.items():
        found.append(namespace)
        found.extend(f"{namespace}.{sub}" for sub in find_packages(folder))
    return found


setup(
    packages=_packages(),
    package_dir=NAMESPACE_ROOTS,
    package_data={"": ["*.json", "*.txt", "*.toml", "*.wav", "*.png", "*.md"]},
)
