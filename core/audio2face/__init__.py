"""NVIDIA Audio2Face-3D regression models (Mark v2.3, Claire and James v2.3.1) on onnxruntime.

The package reads a model folder in its Hugging Face layout (:mod:`.files`), cuts audio into the
network's windows (:mod:`.windows`), runs the shipped ``network.onnx`` in batches (:mod:`.network`)
and post-processes its output in the SDK's order with numpy (:mod:`.skin`, :mod:`.tongue`,
:mod:`.jaw`, :mod:`.eyes`, :mod:`.solver`). :mod:`.engine` puts them behind the job layer;
:mod:`.emotion_model` runs Audio2Emotion for ``--emotion auto`` (only ever into this engine).

Nothing here imports torch: onnxruntime, numpy and scipy are all it needs. The contract every module
follows is ``shared/reference/audio2face/SPEC.md`` (see docs/audio2face.md for the corrections).
"""
