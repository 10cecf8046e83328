"""NVIDIA's Audio2Face-3D regression architecture in torch, random weights, for the speed bench only.

NVIDIA ships Mark v2.3 only as a TensorRT plan and an ONNX file on Hugging Face, which this project
cannot download, but the architecture the Training Framework trains and exports is public:
``audio2face/networks/conv_w2v_autocorr.py`` (``NETWORK_NAME`` in
``audio2face/config_base/config_train_regression_base.py``). Building it here with the default
hyper-parameters of that config and the real tensor sizes gives the bench a network whose cost per
frame is the shipped one's, even though its numbers mean nothing.

The network, per frame, for an 8320-sample window and a 26-value emotion row:

* wav2vec2-base (torchaudio's ``WAV2VEC2_BASE``, pretrained and frozen in training, random here): the
  7-layer convolutional feature encoder (512 channels, group norm after the first layer), the
  512->768 feature projection, the grouped positional convolution (kernel 128, 16 groups, weight norm)
  and the first ``w2v_num_layers`` (= 1) post-norm transformer layers (768 wide, 12 heads, 3072 FFN):
  25 frames of 768 features, a learnt weighted sum over the kept layers, then 768->256 and ReLU;
* autocorrelation features: 25 Hann windows of 640 samples at a 320 stride, DC removed, 32 lags,
  then five (1, k) frequency convolutions (72, 108, 162, 243, 256 channels) down to one bin;
* both 256-channel maps joined (512 x 25), four stride-2 time convolutions down to 2 steps, each
  followed by the 16 implicit and 8 embedded explicit emotion values, a dense layer to 256, and two
  dense heads (skin + jaw + eyes, tongue), each two layers;
* ``result`` = skin coefficients, tongue coefficients, then jaw and eyes.

Training-only parts are left out because ``train_regression.py``'s ``export_onnx`` runs the network in
its ``onnx`` mode, where they are never reached: the phoneme-forcing head and the dropouts.
The export matches ``export_onnx``: opset 14, inputs ``input`` [B, 1, L] and ``emotion`` [B, 1, E],
output ``result`` [B, 1, R], axis 0 dynamic and named ``batch_size``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

# wav2vec2-base's feature encoder: (kernel, stride) per layer, 8320 samples -> 25 frames.
W2V_CONV_LAYERS = ((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2


@dataclass(frozen=True)
class NvidiaSizes:
    """Every size of the architecture; the defaults are the Training Framework's and wav2vec2-base's.

    Sources: ``NETWORK_HYPER_PARAMS`` and ``AUDIO_PARAMS`` in ``config_train_regression_base.py``
    (w2v and autocorrelation features on, one w2v layer, autocorrelation 32 lags / 25 windows /
    640 samples / 320 stride / Hann / DC removed, implicit emotion 16, explicit embedding 8, window
    8320); the convolution and dense widths are fixed in ``conv_w2v_autocorr.py``; wav2vec2-base's
    sizes are torchaudio's ``wav2vec2_base`` (512-channel encoder, 768 wide, 12 heads, 3072 FFN,
    positional convolution 128 / 16 groups). Output sizes come from the model folder (Mark: 272
    skin, 10 tongue, 15 jaw, 4 eyes; 10 explicit emotions).
    """

    skin: int = 272
    tongue: int = 10
    jaw: int = 15
    eyes: int = 4
    implicit_emotion: int = 16
    explicit_emotion: int = 10
    explicit_embedding: int = 8
    w2v_layers: int = 1
    w2v_conv_channels: int = 512
    w2v_width: int = 768
    w2v_heads: int = 12
    w2v_ffn: int = 3072
    w2v_pos_kernel: int = 128
    w2v_pos_groups: int = 16
    lags: int = 32
    corr_windows: int = 25
    corr_window_len: int = 640
    corr_stride: int = 320
    freq_channels: tuple[int, ...] = field(default=(72, 108, 162, 243, 256))
    features: int = 256
    time_channels: int = 256

    @property
    def emotion_size(self) -> int:
        """Values of the ``emotion`` input: implicit then explicit."""
        return self.implicit_emotion + self.explicit_emotion

    @property
    def result_size(self) -> int:
        """Values of ``result`` per frame."""
        return self.skin + self.tongue + self.jaw + self.eyes

    @classmethod
    def tiny(cls, **outputs: int) -> "NvidiaSizes":
        """The same graph with narrow layers, for smoke runs (the window and frame counts are kept)."""
        return cls(w2v_conv_channels=16, w2v_width=32, w2v_heads=4, w2v_ffn=64, w2v_pos_kernel=16, w2v_pos_groups=4,
                   freq_channels=(8, 8, 8, 8, 16), features=16, time_channels=16, **outputs)


def norm_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU scaled by sqrt(2) (the framework's NormRelu with no leak) so activations keep unit variance."""
    return F.relu(x) * math.sqrt(2.0)


def join_emotion(x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    """Append per-frame emotion values as extra channels, constant over x's spatial axes.

    ``x`` is [N, C, ...] with N = batch * seq frames, ``emotion`` is [N, K].
    """
    spatial = x.shape[2:]
    shaped = emotion.reshape(emotion.shape[0], emotion.shape[1], *([1] * len(spatial)))
    return torch.cat((x, shaped.expand(-1, -1, *spatial)), dim=1)


class W2VFeatureEncoder(nn.Module):
    """wav2vec2's strided convolutions (no bias), group norm per channel after the first, GELU after each."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        convs, cin = [], 1
        for kernel, stride in W2V_CONV_LAYERS:
            convs.append(nn.Conv1d(cin, channels, kernel, stride=stride, bias=False))
            cin = channels
        self.convs = nn.ModuleList(convs)
        self.first_norm = nn.GroupNorm(channels, channels)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """[N, L] samples -> [N, T, C] features."""
        x = samples.unsqueeze(1)
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index == 0:
                x = self.first_norm(x)
            x = F.gelu(x)
        return x.transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with biased projections, as in wav2vec2's encoder."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(width // heads)  # a constant, so the exported graph holds no shape arithmetic
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T, D] -> [N, T, D]."""
        n, t, d = x.shape
        head = d // self.heads

        def split(projected: torch.Tensor) -> torch.Tensor:
            return projected.reshape(n, t, self.heads, head).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        weights = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)
        mixed = torch.matmul(weights, v).transpose(1, 2).reshape(n, t, d)
        return self.out_proj(mixed)


class PostNormLayer(nn.Module):
    """wav2vec2-base's transformer layer: attention and FFN, each added back then layer-normed."""

    def __init__(self, width: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.attention = SelfAttention(width, heads)
        self.attention_norm = nn.LayerNorm(width)
        self.ffn_in = nn.Linear(width, ffn)
        self.ffn_out = nn.Linear(ffn, width)
        self.ffn_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class Wav2Vec2Truncated(nn.Module):
    """wav2vec2-base cut after its first ``layers`` transformer layers; returns each kept layer's output."""

    def __init__(self, sizes: NvidiaSizes) -> None:
        super().__init__()
        self.encoder = W2VFeatureEncoder(sizes.w2v_conv_channels)
        self.projection_norm = nn.LayerNorm(sizes.w2v_conv_channels)
        self.projection = nn.Linear(sizes.w2v_conv_channels, sizes.w2v_width)
        positional = nn.Conv1d(sizes.w2v_width, sizes.w2v_width, sizes.w2v_pos_kernel,
                               padding=sizes.w2v_pos_kernel // 2, groups=sizes.w2v_pos_groups)
        self.positional = nn.utils.parametrizations.weight_norm(positional, name="weight", dim=2)
        self.trim = 1 if sizes.w2v_pos_kernel % 2 == 0 else 0  # an even kernel yields one frame too many
        self.embedding_norm = nn.LayerNorm(sizes.w2v_width)
        self.layers = nn.ModuleList(PostNormLayer(sizes.w2v_width, sizes.w2v_heads, sizes.w2v_ffn)
                                    for _ in range(sizes.w2v_layers))

    def forward(self, samples: torch.Tensor) -> list[torch.Tensor]:
        """[N, L] samples -> one [N, T, D] tensor per kept layer."""
        x = self.projection(self.projection_norm(self.encoder(samples)))
        position = self.positional(x.transpose(1, 2))
        if self.trim:
            position = position[:, :, : -self.trim]
        x = self.embedding_norm(x + F.gelu(position).transpose(1, 2))
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class AutoCorrelation(nn.Module):
    """Short-time autocorrelation: Hann windows, DC removed, ``lags`` lags, divided by the window length."""

    def __init__(self, sizes: NvidiaSizes) -> None:
        super().__init__()
        self.lags = sizes.lags
        self.window_len = sizes.corr_window_len
        starts = np.arange(sizes.corr_windows)[:, None] * sizes.corr_stride
        self.register_buffer("sample_index", torch.from_numpy((starts + np.arange(sizes.corr_window_len)).reshape(-1)))
        self.register_buffer("taper", torch.from_numpy(np.hanning(sizes.corr_window_len).astype(np.float32)))
        self.windows = sizes.corr_windows

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """[N, L] samples -> [N, 1, windows, lags]."""
        frames = torch.index_select(samples, 1, self.sample_index).reshape(samples.shape[0], self.windows, self.window_len)
        frames = (frames - frames.mean(dim=2, keepdim=True)) * self.taper
        products = [(frames[:, :, : self.window_len - lag] * frames[:, :, lag:]).sum(dim=2) for lag in range(self.lags)]
        return (torch.stack(products, dim=2) / self.window_len).unsqueeze(1)


class A2FRegressionNetwork(nn.Module):
    """conv_w2v_autocorr in its ONNX mode: (input [B,1,L], emotion [B,1,E]) -> result [B,1,R]."""

    AUTOCORR_SCALE = 8.912028121636435  # the framework's fixed input scale for the autocorrelation branch
    W2V_SCALE = 1.0

    def __init__(self, sizes: NvidiaSizes) -> None:
        super().__init__()
        self.sizes = sizes
        self.w2v = Wav2Vec2Truncated(sizes)
        self.layer_weights = nn.Parameter(torch.ones(sizes.w2v_layers))
        self.w2v_to_features = nn.Linear(sizes.w2v_width, sizes.features)
        self.autocorrelation = AutoCorrelation(sizes)
        freq, cin = [], 1
        for index, cout in enumerate(sizes.freq_channels):
            last = index == len(sizes.freq_channels) - 1
            freq.append(nn.Conv2d(cin, cout, (1, 2) if last else (1, 3), stride=(1, 1) if last else (1, 2),
                                  padding=(0, 0) if last else (0, 1)))
            cin = cout
        self.freq = nn.ModuleList(freq)
        emotion = sizes.implicit_emotion + sizes.explicit_embedding
        width = sizes.time_channels + emotion
        self.time = nn.ModuleList(
            nn.Conv2d(sizes.features + sizes.freq_channels[-1] if index == 0 else width, sizes.time_channels, (3, 1),
                      stride=(2, 1), padding=(1, 0))
            for index in range(4)
        )
        self.time_dense = nn.Linear(2 * width, sizes.time_channels)
        face = sizes.skin + sizes.jaw + sizes.eyes
        self.face1, self.face2 = nn.Linear(width, face), nn.Linear(face, face)
        self.tongue1, self.tongue2 = nn.Linear(width, sizes.tongue), nn.Linear(sizes.tongue, sizes.tongue)
        self.explicit_embedding = nn.Linear(sizes.explicit_emotion, sizes.explicit_embedding)

    def forward(self, audio: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        batch, seq = audio.shape[0], audio.shape[1]
        samples = audio.reshape(batch * seq, audio.shape[2])
        emotion = emotion.reshape(batch * seq, emotion.shape[2])
        implicit = emotion[:, : self.sizes.implicit_emotion]
        explicit = self.explicit_embedding(emotion[:, self.sizes.implicit_emotion :])
        emotions = torch.cat((implicit, explicit), dim=1)

        layers = torch.stack(self.w2v(samples * self.W2V_SCALE), dim=-1)
        w2v = (layers * self.layer_weights).sum(dim=-1) / self.layer_weights.sum()
        w2v = F.relu(self.w2v_to_features(w2v)).transpose(1, 2).unsqueeze(-1)  # [N, 256, 25, 1]

        corr = self.autocorrelation(samples * self.AUTOCORR_SCALE)  # [N, 1, 25, lags]
        for conv in self.freq:
            corr = norm_relu(conv(corr))  # -> [N, 256, 25, 1]

        x = torch.cat((w2v, corr), dim=1)
        for conv in self.time:
            x = join_emotion(norm_relu(conv(x)), emotions)  # 25 -> 13 -> 7 -> 4 -> 2 time steps
        x = join_emotion(norm_relu(self.time_dense(x.reshape(x.shape[0], -1))), emotions)

        face = self.face2(self.face1(x))
        tongue = self.tongue2(self.tongue1(x))
        skin = self.sizes.skin
        result = torch.cat((face[:, :skin], tongue, face[:, skin:]), dim=1)
        return result.reshape(batch, seq, -1)


def build_network(sizes: NvidiaSizes, seed: int = 0) -> A2FRegressionNetwork:
    """The network with seeded random weights, in eval mode.

    Layers keep torch's default initialisation, and the pretrained-only parts are random too; the
    bench feeds outputs through the solve, so only their sizes and the cost matter.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        network = A2FRegressionNetwork(sizes).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return network


def parameter_count(network: nn.Module) -> int:
    """Trainable and frozen parameters together (weight norm's g and v counted as stored)."""
    return sum(parameter.numel() for parameter in network.parameters())


def macs_per_frame(network: A2FRegressionNetwork, buffer_len: int) -> int:
    """Multiply-accumulates of one frame: convolutions, dense layers, attention products and autocorrelation.

    Counted from the shapes seen by forward hooks on one frame, so it follows the built sizes.
    Normalisations, activations and the emotion joins are left out (well under 1 %).
    """
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, SelfAttention):
            _, t, d = inputs[0].shape
            total += 2 * t * t * d  # scores and the weighted sum
        elif isinstance(module, AutoCorrelation):
            total += sum(module.windows * (module.window_len - lag) for lag in range(module.lags))

    hooks = [module.register_forward_hook(count) for module in network.modules()
             if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear, SelfAttention, AutoCorrelation))]
    try:
        with torch.no_grad():
            network(torch.zeros(1, 1, buffer_len), torch.zeros(1, 1, network.sizes.emotion_size))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def export_onnx(network: A2FRegressionNetwork, path: Path, buffer_len: int) -> None:
    """Write ``network.onnx`` with the interface ``train_regression.py`` exports (opset 14, dynamic batch)."""
    example = (torch.zeros(1, 1, buffer_len), torch.zeros(1, 1, network.sizes.emotion_size))
    with torch.no_grad():
        torch.onnx.export(
            network, example, str(path), input_names=["input", "emotion"], output_names=["result"], opset_version=14,
            dynamic_axes={name: {0: "batch_size"} for name in ("input", "emotion", "result")}, dynamo=False,
        )


def write_nvidia_network(path: Path, buffer_len: int, emotion_size: int, result_size: int, *, skin: int, tongue: int,
                         tiny: bool = False, seed: int = 0) -> NvidiaSizes:
    """Build, check against the folder's sizes and export; the bench's ``network.onnx`` writer.

    ``skin`` and ``tongue`` are the folder's PCA sizes (jaw 15 and eyes 4 are fixed by the format).
    """
    outputs = {"skin": skin, "tongue": tongue}
    sizes = NvidiaSizes.tiny(**outputs) if tiny else NvidiaSizes(**outputs)
    if sizes.emotion_size != emotion_size or sizes.result_size != result_size:
        raise ValueError(f"{path}: the folder wants emotion {emotion_size} / result {result_size}, the network has "
                         f"{sizes.emotion_size} / {sizes.result_size}")
    if buffer_len != sizes.corr_windows * sizes.corr_stride + sizes.corr_window_len - sizes.corr_stride:
        raise ValueError(f"{path}: a {buffer_len}-sample window does not hold {sizes.corr_windows} autocorrelation windows")
    network = build_network(sizes, seed)
    export_onnx(network, path, buffer_len)
    log.info("nvidia network: %d parameters, %.2f GMAC per frame -> %s", parameter_count(network),
             macs_per_frame(network, buffer_len) / 1e9, path)
    return sizes
