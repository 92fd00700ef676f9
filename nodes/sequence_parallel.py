"""RTV_SequenceParallel: MODEL -> MODEL that runs a Wan model sequence-parallel over several GPUs."""

import logging

import comfy.model_management
from comfy_api.latest import io

from ..patches.sequence_parallel import (
    BACKENDS,
    SPSettings,
    apply_sequence_parallel,
    default_ranks,
    shutdown_pool,
)

MAX_RANKS = 64
log = logging.getLogger("RealtimeVideo")
CPU_DEFAULT_RANKS = 2


class SequenceParallel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_SequenceParallel",
            display_name="Sequence Parallel (RTV)",
            category="RealtimeVideo/performance",
            description=(
                "Splits every video frame's tokens of a Wan 2.1/2.2 model over several GPUs (Ulysses sequence "
                "parallelism with a global time index): each GPU runs its share of the tokens and holds its share "
                "of the attention heads and of the causal KV cache. Works with any sampler, the Causal Streaming "
                "Sampler and Monarch Attention (RTV). Starts one helper process per extra GPU at the first "
                "sampling step; they stop when this node runs again, on an error or interrupt, and with ComfyUI."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A plain Wan 2.1/2.2 model (text-to-video, image-to-video, "
                                                "first-last-frame, Self-Forcing / CausVid)."),
                io.Int.Input("ranks", default=0, min=0, max=MAX_RANKS,
                             tooltip="Processes to split over: 0 = every visible GPU (on a CPU-only machine: "
                                     f"{CPU_DEFAULT_RANKS}), lowered to a count that divides the model's attention "
                                     "heads (Wan 1.3B: 12, 14B: 40). Other values must divide the heads. 1 = off."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto",
                               tooltip="auto: NCCL between GPUs, gloo between CPU processes."),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, ranks: int, backend: str) -> io.NodeOutput:
        shutdown_pool()  # a pool of an earlier run of this node holds the old model's weights
        device = model.load_device or comfy.model_management.get_torch_device()
        if ranks == 0:
            heads = getattr(model.get_model_object("diffusion_model"), "num_heads", 1)  # not Wan: refused below
            ranks = default_ranks(device, heads, CPU_DEFAULT_RANKS)
            log.info("[RTV] sequence parallel: %d ranks (%d attention heads)", ranks, heads)
        return io.NodeOutput(apply_sequence_parallel(model, SPSettings(ranks, backend)))


NODES = [SequenceParallel]
