"""CUDA graphs for every Wan block of the causal sampler, with the self-attention left eager.

With a cache of every earlier frame (Self-Forcing's default), each chunk attends to more keys than
the last, so a graph of the whole model call (``cuda_graphs.ChunkGraph``) never repeats. Everything
else in a block has shapes set by the chunk's tokens alone: the modulation and norms, the q/k/v
projections with their q/k norm and RoPE, the output projection, the cross-attention over the cached
text K/V and the MLP. So each block runs as two graphs around its self-attention, and the attention
(dense, or Monarch in chunk mode through the usual override) runs eagerly over the cache at whatever
length it has. LLM servers split their graphs at attention for the same reason. Per block the host
then launches 2 graphs, 3 copies and the attention instead of ~35 kernels: the sampler is bound by
host time per kernel (bench/host_probe.py).

Static tensors shared by the blocks of one token shape: the call's modulation and RoPE tables, q/k/v,
the attention output, and the residual stream in two buffers (block i reads one and writes the other,
so a block's output is overwritten two blocks later: nothing outside the block loop may keep it).
The first graph writes q, k, v; the eager part copies k and v into the cache slots, runs attention
and copies its output for the second graph, which writes the block's output.

Captured at the second call of a token shape in a run (the first call tunes kernels, plans cuDNN and
computes the text K/V eagerly); captures share one memory pool and replay in capture order. Blocks
whose weights are cast or streamed per call (low-VRAM loading, weight functions) stay eager; if a
capture fails, the run goes on eagerly with one log line.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import torch

from .fused_block import block_modulation, fused_block_input, fused_block_output
from .graph_capture import capture_guards, settle_failed_capture
from .self_attention import project_self_attention, self_attention_marked

log = logging.getLogger(__name__)


@dataclass
class _Statics:
    """What the graphs of one token shape read and write outside their own work space. q, k, v and
    the residual stream are made by the first captures and stay reserved in the graphs' pool."""

    e: torch.Tensor
    freqs: torch.Tensor
    e_source: torch.Tensor | None = None  # the call's tensors last copied into e and freqs
    freqs_source: torch.Tensor | None = None
    q: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    attention: torch.Tensor | None = None  # the eager attention's output, read by the second halves
    block_inputs: dict = field(default_factory=dict)  # block -> its own input buffer (fed by a copy)
    residual: dict = field(default_factory=dict)  # block % 2 -> the stream the block writes


@dataclass
class _ShapeGraphs:
    calls: int = 0
    last_e: torch.Tensor | None = None  # ComfyUI builds e and freqs once per call: a new e is a new call
    statics: _Statics | None = None
    inputs: dict = field(default_factory=dict)  # block -> the input tensor its graphs read
    eager_blocks: set = field(default_factory=set)  # blocks whose weights move or change per call
    first: dict = field(default_factory=dict)  # block -> graph up to q, k, v
    second: dict = field(default_factory=dict)  # block -> graph from the attention output on


def graphable_block(block, device) -> bool:
    """Weights that stay where they are between calls: no per-call cast, weight function or offload."""
    for module in block.modules():
        if getattr(module, "comfy_cast_weights", False) or getattr(module, "weight_function", None):
            return False
        if getattr(module, "bias_function", None):
            return False
    return all(p.device == device for p in block.parameters())


class BlockGraphs:
    """The block graphs of one causal run; ``state`` is its KVCacheState."""

    def __init__(self, state):
        self.state = state
        self.enabled = True
        self.failure: str | None = None
        self.captures = 0
        self.replays = 0
        self.reset()

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        """Drop every graph (a new run: new cache and text K/V tensors)."""
        self._shapes: dict = {}
        self._pool = None
        self._stream = None
        self._text = None

    def summary(self) -> str:
        text = f"block graphs: {self.captures} captured, {self.replays} block calls replayed"
        return text + (f" (off: {self.failure})" if self.failure else "")

    def forward(self, index, block, x, e, freqs, context, context_img_len, transformer_options):
        """Block ``index`` replayed from its graphs, or None: the caller runs it eagerly."""
        state = self.state
        if not (self.enabled and x.is_cuda) or transformer_options.get("patches_replace", {}).get("dit"):
            return None  # a replaced block may keep its output, which the residual buffers overwrite
        if state.text_context is not self._text:  # the second halves read the old text K/V
            self._shapes = {}
            self._text = state.text_context
        key = (x.shape[0], x.shape[1], e.shape, e.dtype, freqs.shape, freqs.dtype, x.device)
        entry = self._shapes.setdefault(key, _ShapeGraphs())
        if e is not entry.last_e:  # a new model call
            entry.calls += 1
            entry.last_e = e
        if entry.calls < 2 or index in entry.eager_blocks:
            return None
        if index not in entry.first and not graphable_block(block, x.device):
            entry.eager_blocks.add(index)  # decided once per run: walking the modules every call costs host time
            return None
        if entry.statics is None:
            entry.statics = _Statics(e=e.clone(), freqs=freqs.clone())
        s = entry.statics
        # the tensor this block's graphs read as their input, fixed at capture
        x_in = entry.inputs.get(index)
        if x_in is None:
            x_in = self._block_input(s, index, x)
        attn = block.self_attn

        def first_half():
            h = fused_block_input(block, x_in, block_modulation(block, x_in, s.e))
            q, k, v = project_self_attention(attn, h, s.freqs, q_out=s.q, k_out=s.k)
            if s.v is None:
                s.q, s.k, s.v = q, k, v
            else:
                s.v.copy_(v)

        def cross_attention(h):
            return block.cross_attn(h, context, context_img_len=context_img_len, transformer_options=transformer_options)

        def second_half():
            out = s.residual.get(index % 2)
            y = attn.o(s.attention)
            result = fused_block_output(block, x_in, block_modulation(block, x_in, s.e), y, cross_attention, out=out)
            if out is None:
                s.residual[index % 2] = result

        if index not in entry.first:
            if s.v is None:  # q, k, v made outside the graphs (see _capture)
                first_half()
            if not self._capture(entry.first, index, first_half, x.device):
                return None
            entry.inputs[index] = x_in
        if e is not s.e_source or freqs is not s.freqs_source:  # once per call, by whichever block replays first
            s.e.copy_(e)
            s.freqs.copy_(freqs)
            s.e_source, s.freqs_source = e, freqs
        if x_in is not x:
            x_in.copy_(x)
        entry.first[index].replay()
        keys, values = state.self_attention_kv(index, s.k, s.v)
        attention = self_attention_marked(attn, s.q, keys, values, index, transformer_options)
        if s.attention is None:
            s.attention = torch.empty_like(attention)
        s.attention.copy_(attention)
        if index not in entry.second and s.residual.get(index % 2) is None:
            second_half()  # the residual buffer made outside the graphs (see _capture)
        if index not in entry.second and not self._capture(entry.second, index, second_half, x.device):
            # this block's first half already ran: finish it eagerly from the same tensors
            modulation = block_modulation(block, x_in, e)
            return fused_block_output(block, x_in, modulation, attn.o(s.attention), cross_attention)
        entry.second[index].replay()
        self.replays += 1
        return s.residual[index % 2]

    # ------------------------------------------------------------------------------ capture
    @staticmethod
    def _block_input(s: _Statics, index: int, x: torch.Tensor) -> torch.Tensor:
        previous = s.residual.get((index - 1) % 2)
        if previous is not None and x is previous:
            return previous  # the previous block's output: no copy
        buffer = s.block_inputs.get(index)
        if buffer is None or buffer.shape != x.shape or buffer.dtype != x.dtype:
            buffer = s.block_inputs[index] = torch.empty_like(x, memory_format=torch.contiguous_format)
        return buffer

    def _capture(self, graphs: dict, index: int, body, device) -> bool:
        """Record ``body`` for block ``index``. The static tensors it writes already exist: the first
        capture of a token shape runs its body once eagerly to make them. A tensor made inside a capture
        and freed after it is legal, but under cudaMallocAsync each such free logs a two-line warning
        from PyTorch's allocator (five per video before this: q, k, v and the two residual buffers)."""
        try:
            graphs[index] = self._record(body, device)
        except Exception as error:  # noqa: BLE001 - anything uncapturable: this run goes on eagerly
            self.enabled, self.failure = False, f"{type(error).__name__}: {error}"
            self._shapes = {}
            torch.cuda.synchronize(device)
            log.warning("[RTV] block CUDA graphs off for this run (a block cannot be captured): %s", self.failure)
            return False
        self.captures += 1
        return True

    def _record(self, body, device) -> torch.cuda.CUDAGraph:
        """Capture ``body`` on a side stream into the shared pool (``torch.cuda.graph`` would also
        synchronise and empty the allocator's cache at every one of the 60 captures)."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(device)
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            graph.capture_begin(pool=self._pool, capture_error_mode="thread_local")
            try:
                with capture_guards():
                    body()
                graph.capture_end()
            except BaseException as error:
                with contextlib.suppress(Exception):  # ended, or invalidated: report the first error
                    graph.capture_end()
                settle_failed_capture(graph, error, self._shapes)
                raise
        current.wait_stream(self._stream)
        if self._pool is None:
            self._pool = graph.pool()
        return graph
