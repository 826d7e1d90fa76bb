"""Precision and placement of a loaded model: dtype (auto | bf16 | fp16 | fp32), 4-bit quantization, and a
transformers ``device_map`` / ``max_memory`` spread over devices, plus the memory a model will need.

``auto`` resolves by device: bf16 on a CUDA GPU that supports it, fp16 on an older CUDA GPU, fp32 on the CPU and
on MPS. The resolved dtype (and 4-bit) is part of a model's fingerprint and of a cell's identity, because it changes
numbers; fp32 without quantization adds nothing, so features, generations and cells computed before these options
existed are still found. ``device_map`` and ``max_memory`` only place the same weights and are not part of either.

Nothing here imports torch at module level, so ``medrival models`` and study validation stay light.
"""
from __future__ import annotations

import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medrival.core.errors import ConfigError

DTYPES = ("auto", "bf16", "fp16", "fp32")
QUANTIZATIONS = ("4bit",)
BYTES_PER_PARAMETER = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "4bit": 0.5}
# Activation allowance per example in a batch: a share of the weights' bytes (KV cache and hidden states of a
# generative model, a ViT's activations), never below a floor. A rough bound for a preflight, not a measurement.
ACTIVATION_SHARE = 0.02
ACTIVATION_FLOOR = 4 * 2**20
OVERHEAD_SHARE = 0.10  # CUDA context, allocator fragmentation, processor and tokenizer
GB = 1e9


def torch_dtype(name: str):
    """The torch dtype of a resolved dtype name (bf16 | fp16 | fp32)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def resolve_dtype(dtype: str | None, device: str) -> str:
    """``auto`` (or None) -> bf16 on CUDA with bf16 support, fp16 on CUDA without, fp32 on CPU and MPS; an explicit
    bf16 / fp16 / fp32 is kept as asked (bf16 on the CPU works, slowly)."""
    dtype = dtype or "auto"
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    if dtype != "auto":
        return dtype
    if not str(device).startswith("cuda"):
        return "fp32"
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu" (torch is imported only for "auto")."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class LoadOptions:
    """How to load one model: a resolved ``dtype``, optional ``quantization`` ("4bit"), and for transformers
    models an optional ``device_map`` ("auto", "balanced", ... or a module -> device mapping) with ``max_memory``
    (device -> size such as "20GiB")."""

    dtype: str = "fp32"
    quantization: str | None = None
    device_map: Any = None
    max_memory: Any = None
    device: str = "cpu"  # where the model will run (4-bit weights are placed there at load); in no id
    engine: str = "transformers"  # or "vllm": generation served by a vLLM server
    server: Any = None  # the vLLM server's settings (url, command, ...; medrival.models.vllm_server); in no id

    @property
    def identity(self) -> dict | None:
        """What changes numbers (dtype, quantization, another engine): None for plain fp32 in transformers, so
        older ids and caches stay valid. A vLLM model's precision is the server's business: its identity is the
        engine alone."""
        if self.engine != "transformers":
            return {"engine": self.engine}
        if self.dtype == "fp32" and self.quantization is None:
            return None
        return {"dtype": self.dtype, **({"quantization": self.quantization} if self.quantization else {})}

    @property
    def placement(self) -> dict | None:
        """Where the weights go, or the server that holds them (not part of any id); None when the model is moved
        whole to the study's device."""
        if self.server is not None:
            return {"server": self.server}
        if self.device_map is None and self.max_memory is None:
            return None
        return {"device_map": self.device_map, "max_memory": self.max_memory}

    @property
    def fingerprint_suffix(self) -> str:
        identity = self.identity
        return "" if identity is None else "|" + json.dumps(identity, sort_keys=True)

    @property
    def label(self) -> str:
        """fp32, bf16, 4bit (bf16 compute) ..., for records and messages."""
        return f"4bit ({self.dtype} compute)" if self.quantization else self.dtype

    @classmethod
    def from_cell(cls, precision: Any = None, placement: Any = None, device: str = "cpu") -> "LoadOptions":
        """The options a cell carries (``CellSpec.precision`` / ``placement``, frozen key-value tuples)."""
        identity = _thaw(precision) or {}
        where = json.loads(placement) if isinstance(placement, str) else (placement or {})
        if isinstance(where.get("max_memory"), dict):  # JSON made GPU indices strings; accelerate wants ints
            where["max_memory"] = {int(k) if str(k).isdigit() else k: v for k, v in where["max_memory"].items()}
        return cls(dtype=identity.get("dtype", "fp32"), quantization=identity.get("quantization"),
                   device_map=where.get("device_map"), max_memory=where.get("max_memory"),
                   device=resolve_device(device) if identity.get("quantization") else device,
                   engine=identity.get("engine", "transformers"), server=where.get("server"))


def _thaw(value: Any) -> Any:
    """Inverse of ``medrival.study.spec.freeze`` for key-value tuples (mappings come back as dicts)."""
    if isinstance(value, tuple) and value and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str)
                                                  for i in value):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def load_options(dtype: str | None, device: str, quantization: str | None = None, device_map: Any = None,
                 max_memory: Any = None, engine: str | None = None, server: Any = None) -> LoadOptions:
    """Resolved options for ``device`` (4-bit computes in bf16 on a GPU that has it, else fp16); ``engine``
    "vllm" with its ``server`` settings hands the model to a vLLM server."""
    if engine == "vllm":
        return LoadOptions(engine="vllm", server=dict(server or {}))
    device = resolve_device(device)
    resolved = resolve_dtype(dtype, device)
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {quantization!r} is not supported; use 4bit or leave it out.")
    if quantization and (dtype or "auto") == "auto":
        resolved = resolve_dtype("auto", device) if device.startswith("cuda") else "bf16"
    return LoadOptions(resolved, quantization, _plain(device_map), _plain(max_memory), device)


def _plain(value: Any) -> Any:
    """Mappings with string keys as given; keeps YAML's int GPU indices (``{0: 20GiB}``) as ints."""
    return dict(value) if isinstance(value, dict) else value


# ------------------------------------------------------------------------------------------------- 4-bit
def check_quantization(model: str, options: LoadOptions) -> None:
    """4-bit loading needs CUDA and bitsandbytes: a ConfigError naming the model, what is missing and the
    alternative."""
    if not options.quantization:
        return
    missing, device = [], options.device
    if not str(resolve_device(device)).startswith("cuda"):
        missing.append(f"a CUDA GPU (this run's device is {device!r})")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (`pip install bitsandbytes`)")
    if missing:
        raise ConfigError(f"model {model!r}: quantization: 4bit needs {' and '.join(missing)}. Run on a CUDA "
                          "machine with `pip install bitsandbytes`, or use dtype: bf16 (half the memory of fp32, "
                          "no extra package) instead.")


def quantization_config(options: LoadOptions):
    """transformers' ``BitsAndBytesConfig`` for 4-bit NF4 weights computing in the options' dtype."""
    from transformers import BitsAndBytesConfig

    compute = options.dtype if options.dtype in ("bf16", "fp16") else "bf16"
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch_dtype(compute))


def from_pretrained_kwargs(model: str, options: LoadOptions) -> dict:
    """``dtype`` / ``quantization_config`` / ``device_map`` / ``max_memory`` for transformers' from_pretrained."""
    check_quantization(model, options)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(options.dtype)}
    if options.quantization:
        kwargs["quantization_config"] = quantization_config(options)
        kwargs["device_map"] = options.device_map or {"": resolve_device(options.device)}
    elif options.device_map is not None:
        if importlib.util.find_spec("accelerate") is None:
            raise ConfigError(f"model {model!r}: device_map needs the accelerate package (`pip install accelerate`).")
        kwargs["device_map"] = options.device_map
    if options.max_memory is not None:
        kwargs["max_memory"] = options.max_memory
        kwargs.setdefault("device_map", "auto")
    return kwargs


# ------------------------------------------------------------------------------------------------- memory
def _safetensors_parameters(path: Path) -> int:
    """Parameters stored in one safetensors file, from its JSON header (no tensor is read)."""
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        total += count
    return total


def folder_parameters(folder: str | Path) -> int | None:
    """Parameter count of a checkpoint folder: exact from safetensors headers, else the size of .bin / .pt
    files over 4 bytes (fp32), else None."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return None
    tensors = sorted(root.glob("*.safetensors"))
    if tensors:
        try:
            return sum(_safetensors_parameters(p) for p in tensors)
        except (OSError, ValueError, struct.error):
            pass
    binaries = [p for p in root.iterdir() if p.suffix in (".bin", ".pt", ".pth") and p.is_file()]
    return sum(p.stat().st_size for p in binaries) // 4 if binaries else None


def card_parameters(card, weights: str | Path | None = None) -> tuple[int | None, str]:
    """(parameter count, where it came from) for ``card``: the local weights folder it would load from when
    there is one (what will really be loaded), else the card's ``parameters`` or ``architecture.parameters_b``;
    (None, why) when neither says."""
    from medrival.models.weights import local_folder

    folder = None
    try:
        folder = local_folder(card, weights)
    except Exception:  # noqa: BLE001 - a missing folder is the weights preflight's to report
        folder = None
    if folder is None and card.source.kind == "demo":
        from medrival.models.demo_weights import WEIGHTS_DIR

        folder = WEIGHTS_DIR / card.source.name
    if folder is not None:
        count = folder_parameters(folder)
        if count:
            return count, f"weights in {folder}"
    if getattr(card, "parameters", None):
        return int(card.parameters), "card"
    architecture = card.architecture
    if architecture is not None and architecture.parameters_b:
        return int(architecture.parameters_b * 1e9), "card"
    return None, "no parameter count on the card and no local weights folder to count"


def memory_estimate(card, dtype: str = "fp32", batch_size: int = 16, *, quantization: str | None = None,
                    weights: str | Path | None = None, parameters: int | None = None) -> int | None:
    """Bytes a model needs to run: parameters x bytes per parameter (0.5 for 4-bit) + an activation allowance per
    example of a batch + overhead. ``card`` may be a card or a card name; ``dtype`` a resolved dtype (``auto`` counts
    as fp32, the CPU's). None when the parameter count is unknown."""
    if isinstance(card, str):
        from medrival.models.catalog import get_card

        card = get_card(card)
    if getattr(card, "source", None) is not None and card.source.kind == "openai-api":
        return 0
    count = parameters if parameters is not None else card_parameters(card, weights)[0]
    if not count:
        return None
    per_parameter = BYTES_PER_PARAMETER["4bit" if quantization else ("fp32" if dtype == "auto" else dtype)]
    weight_bytes = count * per_parameter
    activation_unit = max(count * BYTES_PER_PARAMETER.get(dtype, 4.0) * ACTIVATION_SHARE, ACTIVATION_FLOOR)
    return int(weight_bytes * (1 + OVERHEAD_SHARE) + max(1, int(batch_size)) * activation_unit)


def available_memory(device: str) -> tuple[int, str]:
    """(free bytes, what was measured) on ``device``: free GPU memory on CUDA, available RAM otherwise."""
    device = resolve_device(device)
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free on {device}"
    import psutil

    return int(psutil.virtual_memory().available), "available RAM"
