"""Every official checkpoint lipstream can use, declared as data, and where to look for it.

An entry names its files (sha256 and size where known: unknown values stay
None, never guessed), where they are published, their licence, the network
class they load into (imported lazily by `lipstream.models._loading`), its
declared parameter count and the `remap` that turns the official layout into
the module's keys. Engines never open weight paths themselves: they ask
`lipstream.models._loading.load_model(name, ...)`.

Search order for a file (first hit wins): the ``--weights DIR`` folders in the
order given, then the folders in ``$LIPSTREAM_WEIGHTS`` (os.pathsep separated),
then the user cache folder (``$XDG_CACHE_HOME/lipstream``, else
``~/.cache/lipstream``; ``%LOCALAPPDATA%\\lipstream`` on Windows), which is also
where ``lipstream weights fetch`` writes by default. Inside a folder a file sits
at its `WeightFile.relpath` (e.g. ``LNet.pth``, ``BFM/similarity_Lm3D_all.mat``),
the layout of the official ``checkpoints/`` folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "CHECKPOINTS",
    "Checkpoint",
    "WeightFile",
    "cache_dir",
    "find_file",
    "get",
    "how_to_get",
    "search_dirs",
]

ENV_VAR = "LIPSTREAM_WEIGHTS"


@dataclass(frozen=True)
class WeightFile:
    """One published file. `urls` are direct downloads tried in order; `pages`
    are where a person gets the file when no direct download is known."""

    filename: str
    sha256: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()
    pages: tuple[str, ...] = ()
    member: str | None = None  # the file is this member of the zip archive at `urls`
    subdir: str = ""  # folder inside a weights dir, as in the official checkpoints/ layout

    def __post_init__(self) -> None:
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.filename}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.size is not None and self.size <= 0:
            raise ValueError(f"{self.filename}: size must be positive, got {self.size}")
        if self.member is not None and not self.urls:
            raise ValueError(f"{self.filename}: a zip member needs the archive's url")

    @property
    def relpath(self) -> str:
        return f"{self.subdir}/{self.filename}" if self.subdir else self.filename


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint (or data file set) and the network it fills.

    `module`/`network` name the class to build (imported only when loading);
    `config` names one of its configurations when the class has several (it
    is then built as ``network(config)`` and the module's ``NUM_PARAMS`` is a
    dict keyed by it). `remap` is a function of that module taking the loaded
    files in the order of `files` and returning the state_dict for a strict
    load. Data entries have no network.
    """

    name: str
    title: str
    files: tuple[WeightFile, ...]
    licence: str
    kind: Literal["network", "data"] = "network"
    module: str | None = None
    network: str | None = None
    config: str | None = None
    remap: str = "remap"
    num_params: int | None = None
    wrapper: str | None = None  # where the weights sit in the file, for people reading `weights list`
    half: bool = False  # runs in float16 on CUDA: its output stays within one 8-bit level (tools/bench_half.py)
    # runs under bfloat16 autocast on CPUs with native bfloat16 (AVX512-BF16, AMX): its output stays
    # within two 8-bit levels (tools/bench_half.py --bf16)
    bf16: bool = False


# ------------------------------------------------------------------ sources

_WAV2LIP_README = "https://github.com/Rudrabha/Wav2Lip#getting-the-weights"
_WAV2LIP_LICENCE = (
    "Wav2Lip README: personal/research/non-commercial use only; commercial use prohibited "
    "(trained on LRS2), contact the authors for a licence"
)
_RETALKING_RELEASES = (
    "https://github.com/vinthony/video-retalking/releases/download/v0.0.1/",
    "https://github.com/OpenTalker/video-retalking/releases/download/v0.0.1/",
)
_RETALKING_DRIVE = "https://drive.google.com/drive/folders/18rhjMpxK8LVVxf7PI6XwOidt8Vouv_H0"
_RETALKING_LICENCE = (
    "OpenTalker/video-retalking: MIT licence file; no separate terms for the weights beyond the "
    "README disclaimer (no misuse, no Tencent names or logos)"
)
_BFM_LICENCE = "derived from the Basel Face Model 2009: registration and non-commercial research use (BFM licence)"
_UNVERIFIED = "not verified here; read the licence of {} before use"


def _retalking(filename: str, *, archive: str | None = None, subdir: str = "") -> WeightFile:
    """A file of the video-retalking v0.0.1 release, published alone or inside `archive`."""
    return WeightFile(
        filename,
        urls=tuple(base + (archive or filename) for base in _RETALKING_RELEASES),
        pages=(_RETALKING_DRIVE,),
        member=None if archive is None else filename,
        subdir=subdir,
    )


_FACEXLIB_RELEASE = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/"
_ADRIANBULAT = "https://www.adrianbulat.com/downloads/python-fan/"
_FACE_ALIGNMENT_LICENCE = "1adrianb/face-alignment: " + _UNVERIFIED.format("1adrianb/face-alignment")


def _retinaface(name: str, backbone: str, filename: str, config: str, num_params: int) -> Checkpoint:
    """A RetinaFace entry: facexlib's release v0.1.0 copy of biubug6's file (the same layout)."""
    return Checkpoint(
        name,
        f"RetinaFace {backbone} face detector (facexlib file)",
        (WeightFile(filename, urls=(_FACEXLIB_RELEASE + filename,)),),
        "biubug6/Pytorch_Retinaface, xinntao/facexlib: " + _UNVERIFIED.format("both repositories"),
        module="lipstream.models.retinaface",
        network="RetinaFace",
        config=config,
        num_params=num_params,
        wrapper=f"plain state_dict, keys may start with 'module.'; biubug6's {filename.removeprefix('detection_')} has the same layout",
    )


_GPEN_MODELS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/"  # the yangxy/GPEN README's links
_GPEN_LICENCE = (
    "GPEN authors (yangxy/GPEN, Alibaba): no licence file; the README said \"For academic and non-commercial "
    "use only\" from 2021 until that section was removed in March 2026; no other terms published for the "
    "weights (not verified further)"
)
_GFPGAN_LICENCE = (
    "TencentARC/GFPGAN: Apache-2.0 except the third-party components its LICENSE lists (StyleGAN2 code after "
    "rosinality/stylegan2-pytorch, MIT, with NVIDIA's non-commercial StyleGAN2 licence reproduced; DFDNet, "
    "CC BY-NC-SA 4.0); no separate terms stated for the released weights (not verified further)"
)
_GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download/"


def _gfpgan(name: str, title: str, filename: str, urls: tuple[str, ...]) -> Checkpoint:
    """GFPGAN v1.3 and v1.4 share the clean architecture and the file layout."""
    return Checkpoint(
        name,
        title,
        (WeightFile(filename, urls=urls),),
        _GFPGAN_LICENCE,
        module="lipstream.models.gfpgan",
        network="GFPGANv1Clean",
        num_params=86_444_252,
        wrapper="'params_ema' (else 'params')",
        half=False,  # float16 (CPU-measured, v1.3 golden fill): max |diff| 0.32, up to 24 levels, 40% of levels changed
    )


def _gpen(filename: str) -> WeightFile:
    """A GPEN-authors file: in the video-retalking release and at the GPEN README's link."""
    spec = _retalking(filename)
    return replace(spec, urls=(*spec.urls, _GPEN_MODELS + filename))


_LNET_FILE = _retalking("LNet.pth")
_STATE_DICT_MODULE = "'state_dict', keys may start with 'module.'"  # how Wav2Lip-style training scripts save

CHECKPOINTS: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint(
            "wav2lip",
            "Wav2Lip generator (accurate lip-sync)",
            (WeightFile("wav2lip.pth", pages=(_WAV2LIP_README,)),),
            _WAV2LIP_LICENCE,
            module="lipstream.models.wav2lip",
            network="Wav2Lip",
            num_params=36_298_035,
            wrapper=_STATE_DICT_MODULE,
            half=True,  # float16 (CPU-measured): max |diff| 0.00096, 1 level at most, 3.9% of levels changed
            bf16=True,  # bfloat16 autocast: max |diff| 0.0055, 2 levels at most, 42% of levels changed
        ),
        Checkpoint(
            "wav2lip_gan",
            "Wav2Lip + GAN generator (better visual quality, slightly weaker sync)",
            (WeightFile("wav2lip_gan.pth", pages=(_WAV2LIP_README,)),),
            _WAV2LIP_LICENCE,
            module="lipstream.models.wav2lip",
            network="Wav2Lip",
            num_params=36_298_035,
            wrapper=_STATE_DICT_MODULE,
            half=True,  # float16 (CPU-measured): max |diff| 0.00096, 1 level at most, 3.9% of levels changed
            bf16=True,  # bfloat16 autocast: max |diff| 0.0055, 2 levels at most, 42% of levels changed
        ),
        Checkpoint(
            "syncnet_color",
            "SyncNet_color lip-sync expert (Wav2Lip's discriminator; `lipstream score`)",
            (WeightFile("lipsync_expert.pth", pages=(_WAV2LIP_README,)),),
            _WAV2LIP_LICENCE,
            module="lipstream.models.syncnet_color",
            network="SyncNetColor",
            num_params=16_435_072,
            wrapper=_STATE_DICT_MODULE,
        ),
        Checkpoint(
            "lnet",
            "VideoReTalking L-Net (96x96 lip generator)",
            (_LNET_FILE,),
            _RETALKING_LICENCE,
            module="lipstream.models.lnet",
            network="LNet",
            num_params=127_733_507,
            # float32 only (tools/bench_half.py, golden fill): bfloat16 autocast moves the output up to
            # 255 levels (3.7% of levels); float16 has no CPU kernel for its FFT, not measured
            wrapper=_STATE_DICT_MODULE,
        ),
        Checkpoint(
            "enet",
            "VideoReTalking E-Net around L-Net (384x384)",
            (_retalking("ENet.pth"), _LNET_FILE),
            _RETALKING_LICENCE,
            module="lipstream.models.enet",
            network="ENet",
            num_params=158_931_088,
            # float32 only (tools/bench_half.py, golden fill): bfloat16 autocast moves the output up to
            # 187 levels (24% of levels); float16 has no CPU kernel for L-Net's FFT, not measured
            wrapper="'state_dict' of ENet.pth without its low_res keys + LNet.pth as low_res",
        ),
        Checkpoint(
            "dnet",
            "VideoReTalking D-Net expression stabiliser",
            (_retalking("DNet.pt"),),
            _RETALKING_LICENCE,
            module="lipstream.models.dnet",
            network="DNet",
            num_params=22_519_109,
            # float32 only (tools/bench_half.py, golden fill): float16 moves the output up to 167
            # levels (88% of levels), bfloat16 autocast up to 110 (93%)
            wrapper="'net_G_ema'",
        ),
        Checkpoint(
            "face3d_recon",
            "Deep3DFaceRecon ResNet-50 coefficient regressor",
            (_retalking("face3d_pretrain_epoch_20.pth"),),
            "Deep3DFaceRecon_pytorch / video-retalking code: MIT; trained with the Basel Face Model 2009 "
            "(BFM licence: non-commercial research)",
            module="lipstream.models.face3d_recon",
            network="Face3dRecon",
            num_params=24_034_625,
            wrapper="'net_recon'",
        ),
        Checkpoint(
            "bfm_lm3d",
            "BFM 68-point mean landmarks for the face3d 5-point alignment (BFM/similarity_Lm3D_all.mat)",
            (_retalking("similarity_Lm3D_all.mat", archive="BFM.zip", subdir="BFM"),),
            _BFM_LICENCE,
            kind="data",
        ),
        Checkpoint(
            "expression",
            "VideoReTalking expression templates (expression.mat: expression_center, expression_mouth)",
            (_retalking("expression.mat"),),
            _RETALKING_LICENCE,
            kind="data",
        ),
        Checkpoint(
            "gpen512",
            "GPEN-BFR-512 face restoration",
            (_gpen("GPEN-BFR-512.pth"),),
            _GPEN_LICENCE,
            module="lipstream.models.gpen",
            network="FullGenerator",
            num_params=71_005_223,
            wrapper="plain state_dict (a training checkpoint's 'g_ema' also loads)",
            half=True,  # float16 (CPU-measured): max |diff| 0.0055, 1 level at most, 3.3% of levels changed
        ),
        Checkpoint(
            "parsenet",
            "GPEN ParseNet face parsing (19 classes)",
            (_gpen("ParseNet-latest.pth"),),
            _GPEN_LICENCE,
            module="lipstream.models.parsenet",
            network="ParseNet",
            num_params=21_303_254,
            wrapper="plain state_dict",
            half=False,  # float16 (CPU-measured): 0.29% of the pixels change class
        ),
        _gfpgan(
            "gfpgan_v1_clean",
            "GFPGAN v1.3 (clean architecture) face restoration",
            "GFPGANv1.3.pth",
            (f"{_GFPGAN_RELEASES}v1.3.0/GFPGANv1.3.pth", *(base + "GFPGANv1.3.pth" for base in _RETALKING_RELEASES)),
        ),
        _gfpgan(
            "gfpgan_v1_4",
            "GFPGAN v1.4 (clean architecture, more detail than v1.3) face restoration",
            "GFPGANv1.4.pth",
            (f"{_GFPGAN_RELEASES}v1.3.4/GFPGANv1.4.pth", f"{_GFPGAN_RELEASES}v1.3.0/GFPGANv1.4.pth"),
        ),
        _retinaface("retinaface_r50", "ResNet-50", "detection_Resnet50_Final.pth", "resnet50", 27_293_600),
        _retinaface("retinaface_mnet", "MobileNet-0.25", "detection_mobilenet0.25_Final.pth", "mobilenet0.25", 426_608),
        Checkpoint(
            "s3fd",
            "S3FD face detector (Wav2Lip's detector)",
            (WeightFile("s3fd-619a316812.pth", urls=(_ADRIANBULAT + "s3fd-619a316812.pth",)),),
            _FACE_ALIGNMENT_LICENCE,
            module="lipstream.models.s3fd",
            network="S3FD",
            num_params=22_459_110,
            wrapper="plain state_dict (no prefix)",
        ),
        Checkpoint(
            "fan2d",
            "FAN 2DFAN-4 68-point landmarks",
            (WeightFile("2DFAN4-11f355bf06.pth.tar", urls=(_ADRIANBULAT + "2DFAN4-11f355bf06.pth.tar",)),),
            _FACE_ALIGNMENT_LICENCE,
            module="lipstream.models.fan",
            network="FAN",
            num_params=23_820_176,
            wrapper="plain state_dict (no prefix; the 2017 file may lack BatchNorm num_batches_tracked)",
        ),
    )
}

# ------------------------------------------------------------------ lookups


def get(name: str) -> Checkpoint:
    """The entry called `name`, or a KeyError listing the known names."""
    try:
        return CHECKPOINTS[name]
    except KeyError:
        raise KeyError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(CHECKPOINTS))}") from None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user folder `weights fetch` writes to and the last place searched."""
    env = os.environ if env is None else env
    if os.name == "nt" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "lipstream"
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lipstream"


def search_dirs(explicit: Iterable[str | Path] = (), env: Mapping[str, str] | None = None) -> list[Path]:
    """Folders searched for weights, first hit wins: `explicit`, $LIPSTREAM_WEIGHTS, the cache dir."""
    env = os.environ if env is None else env
    dirs = [Path(d).expanduser() for d in explicit]
    dirs += [Path(d).expanduser() for d in env.get(ENV_VAR, "").split(os.pathsep) if d]
    dirs.append(cache_dir(env))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_file(spec: WeightFile, dirs: Sequence[Path]) -> Path | None:
    """The first existing `spec.relpath` in `dirs` (existence only; loading checks the content)."""
    for folder in dirs:
        path = folder / spec.relpath
        if path.is_file():
            return path
    return None


def how_to_get(names: Sequence[str]) -> str:
    """What a person does to get the files of `names`: one `weights fetch` for those with
    direct downloads, the publisher's pages for the rest (never a fetch that would refuse)."""
    fetch = [n for n in dict.fromkeys(names) if all(spec.urls for spec in get(n).files)]
    pages = dict.fromkeys(page for n in names if n not in fetch for spec in get(n).files for page in spec.pages)
    parts = []
    if fetch:
        parts.append(f"run `lipstream weights fetch {' '.join(fetch)}`")
    if pages:
        parts.append(f"download {'the rest' if fetch else 'it'} from {' '.join(pages)}")
    return ", ".join(parts)
