"""Export a sentence-transformers model to one ONNX graph, fused and optionally int8-quantized.

Only Transformer -> Pooling (mean or CLS) (-> Normalize) pipelines export; any other raises
:class:`UnsupportedModelError` (the ``auto`` backend then uses torch).  The export uses
``torch.onnx`` and ONNX Runtime's optimizer and quantizer directly: sentence-transformers' own
``backend="onnx"`` needs optimum-onnx, which pins an older transformers.

Example:
    >>> UnsupportedModelError("no pooling").args
    ('no pooling',)
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


_SUPPORTED_POOLING = ("mean", "cls")


class UnsupportedModelError(ValueError):
    """The model cannot be exported to ONNX by this module (``auto`` then falls back to torch)."""


# Dynamic int8 of the MatMuls and the fused Q/K/V Attention: int8 weights per output channel with
# reduce_range (7 bits, so AVX2's u8 x s8 pair sums cannot saturate int16), activations quantized per run
# (uint8). The FFN output projections of the first half of the layers stay fp32: their input, the GELU
# output, has the outlier activations per-tensor quantization handles worst (Bondarenko et al.,
# "Understanding and Overcoming the Challenges of Efficient Transformer Quantization", EMNLP 2021).
# Speed and accuracy of this recipe: docs/benchmarks.md#embedding.
_QUANTIZATION: dict[str, Any] = {"weight_type": "QInt8", "reduce_range": True, "per_channel": True,
                                 "op_types_to_quantize": ["MatMul", "Attention"],
                                 "keep_fp32": r"/encoder/layer\.(\d+)/output/dense/MatMul$", "keep_fp32_layers": 0.5}


class OnnxExporter:
    """Export a sentence-transformers Transformer -> Pooling (-> Normalize) model to one ONNX graph.

    The graph takes ``input_ids`` and ``attention_mask`` and returns the pooled (not yet
    normalised) sentence embedding. BERT-type graphs are fused with ONNX Runtime's
    transformer optimizer (Attention, SkipLayerNorm, BiasGelu), then optionally quantized.

    Example (loads torch and the weights, so it takes a while)::

        meta = OnnxExporter(str(packaged_embedder_path()), quantize=True).export(Path("/tmp/m.onnx"))
    """

    def __init__(self, target: str, quantize: bool) -> None:
        self.target = target
        self.quantize = quantize

    def export(self, out: Path, tokenizer_dir: Path | None = None) -> dict[str, Any]:
        """Write the graph to ``out`` (and the tokenizer files to ``tokenizer_dir``); return its meta."""
        st, pooling = self._load()
        auto_model = st[0].auto_model.eval()
        config = auto_model.config
        raw = out.with_name("raw.onnx")
        _trace(_pooled_model(auto_model, pooling).eval(), st.tokenizer, raw)
        fused = _fuse(raw, config, out.with_name("fused.onnx"))
        if self.quantize:
            _quantize(fused, out, config)
        else:
            os.replace(fused, out)
        for f in (raw, out.with_name("fused.onnx")):
            f.unlink(missing_ok=True)
        if tokenizer_dir is not None:
            st.tokenizer.save_pretrained(str(tokenizer_dir))
        return {"dim": int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension")
                           else st.get_sentence_embedding_dimension()),
                "max_seq_length": int(st.max_seq_length), "pooling": pooling}

    def _load(self) -> tuple[Any, str]:
        """The model, checked to be Transformer -> Pooling (-> Normalize), and its pooling mode."""
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(self.target, device="cpu", model_kwargs={"attn_implementation": "eager"})
        names = [type(m).__name__ for m in st]
        if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
            raise UnsupportedModelError(f"only Transformer -> Pooling (-> Normalize) models export to ONNX; "
                                        f"this one is {' -> '.join(names)}")
        pooling = str(getattr(st[1], "pooling_mode", ""))
        if pooling not in _SUPPORTED_POOLING:
            raise UnsupportedModelError(f"pooling {pooling!r} is not supported for ONNX (supported: "
                                        f"{', '.join(_SUPPORTED_POOLING)})")
        return st, pooling


def _trace(graph: Any, tokenizer: Any, raw: Path) -> None:
    """Trace ``graph`` to the ONNX file ``raw``, with dynamic batch and token axes."""
    import torch

    sample = tokenizer(["a short one", "a slightly longer sample sentence"], padding=True, return_tensors="pt")
    with torch.inference_mode(), warnings.catch_warnings():
        # the tracer's notes on shape-dependent Python branches (TracerWarning) and the legacy
        # exporter's deprecation notice; the graph is checked against torch for 3 to 256 tokens
        # in tests/embedding/test_embedder.py
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (sample["input_ids"], sample["attention_mask"]), str(raw), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "sentence_embedding": {0: "batch"}},
                          opset_version=17)


def _fuse(raw: Path, config: Any, fused: Path) -> Path:
    """BERT-type graphs fused by ONNX Runtime's transformer optimizer into ``fused``; others stay ``raw``."""
    if getattr(config, "model_type", None) != "bert":
        return raw
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(raw), model_type="bert", num_heads=int(config.num_attention_heads),
                   hidden_size=int(config.hidden_size), opt_level=1).save_model_to_file(str(fused))
    return fused


def _quantize(fused: Path, out: Path, config: Any) -> None:
    """Write ``fused`` quantized by :data:`_QUANTIZATION` to ``out``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    q = _QUANTIZATION
    keep = _fp32_nodes(onnx.load(str(fused)), q["keep_fp32"],
                       int(q["keep_fp32_layers"] * int(getattr(config, "num_hidden_layers", 0))))
    logger.debug("quantizing all MatMul/Attention nodes except %s", keep)
    quantize_dynamic(str(fused), str(out), weight_type=getattr(QuantType, q["weight_type"]),
                     per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                     op_types_to_quantize=list(q["op_types_to_quantize"]),
                     nodes_to_exclude=keep, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _fp32_nodes(graph_model: Any, pattern: str, below_layer: int) -> list[str]:
    """Names of the nodes matching ``pattern`` (group 1: the layer number) in layers < ``below_layer``."""
    out = []
    for node in graph_model.graph.node:
        m = re.search(pattern, node.name)
        if m and int(m.group(1)) < below_layer:
            out.append(node.name)
    return out


def _pooled_model(model: Any, pooling: str) -> Any:
    """``model`` + pooling as one traceable ``torch.nn.Module`` (torch imported only here)."""
    import torch

    class PooledModel(torch.nn.Module):
        """Transformer + pooling as one traceable module."""

        def __init__(self, model: Any, pooling: str) -> None:
            super().__init__()
            self.model = model
            self.pooling = pooling

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.pooling == "cls":
                return h[:, 0]
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    return PooledModel(model, pooling)
