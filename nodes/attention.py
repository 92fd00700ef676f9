"""RTV_MonarchAttention: MODEL -> MODEL with Monarch-factorised video self-attention."""

from comfy_api.latest import io

from ..patches.attention import MonarchSettings, apply_monarch_attention, parse_block_list

MAX_SPLIT = 256


class MonarchAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_MonarchAttention",
            display_name="Monarch Attention (RTV)",
            category="RealtimeVideo/attention",
            description=(
                "Replaces the video self-attention of a Wan 2.1/2.2, HunyuanVideo (1.0, 1.5) or LTX-Video model with "
                "Monarch-factorised attention (MonarchRT): cost grows with frames x (rows + columns) instead of "
                "(frames x rows x columns)^2. Cross-attention and the rest of the math stay as they were; tokens "
                "that are not video (HunyuanVideo's text, glyph and vision tokens, reference latents, LTXV guide "
                "frames) stay exact. Stock "
                "Wan blocks also run their norm and residual steps fused and the MLP's GELU in its first product "
                "(same results up to rounding, ~10 % of a 1.3B step). "
                "Put it before TorchCompileModel."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A Wan 2.1/2.2 (Wan 2.2 A14B: patch both experts; TI2V 5B), "
                                                "HunyuanVideo 1.0/1.5 or LTX-Video model."),
                io.Int.Input("tile_frames", default=1, min=1, max=64,
                             tooltip="Latent frames per Monarch tile. 1 = one frame per tile (MonarchRT default)."),
                io.Int.Input("h_split", default=1, min=1, max=MAX_SPLIT,
                             tooltip="Split each frame's token rows into this many tiles. More tiles: closer "
                                     "to dense, more compute. Must divide the rows (height / 16 for Wan and "
                                     "HunyuanVideo, height / 32 for LTX-Video and Wan 2.2 5B)."),
                io.Int.Input("w_split", default=1, min=1, max=MAX_SPLIT,
                             tooltip="Split each frame's token columns into this many tiles. Must divide the "
                                     "columns (width / 16; LTX-Video, Wan 2.2 5B: width / 32)."),
                io.Int.Input("iterations", default=1, min=1, max=3,
                             tooltip="Alternating refinement steps of the Monarch factors: more = closer to "
                                     "softmax attention, cost grows linearly."),
                io.Int.Input("dense_first_steps", default=0, min=0, max=1000,
                             tooltip="Keep exact attention for this many first sampling steps (layout forms there)."),
                io.Int.Input("dense_last_steps", default=0, min=0, max=1000,
                             tooltip="Keep exact attention for this many last sampling steps (fine detail)."),
                io.String.Input("dense_blocks", default="",
                                tooltip="Transformer blocks that keep exact attention, e.g. '0, 1, 28-29'. "
                                        "HunyuanVideo: double blocks first (0-19), then single blocks (20-59); "
                                        "HunyuanVideo 1.5: double blocks 0-53."),
                io.Combo.Input("backend", options=["auto", "triton", "torch"], default="auto",
                               tooltip="auto: Triton kernel on CUDA when available, torch reference elsewhere."),
                io.Boolean.Input("report_error", default=False,
                                 tooltip="Also compute dense attention on a sample of calls and report the "
                                         "relative error per block (node text and log). Slower."),
                io.Int.Input("exact_local", default=1, min=-1, max=16, optional=True,
                             tooltip="Exact attention on the query's own tile frame and this many neighbours on "
                                     "each side, Monarch for the rest (merged exactly). -1 = plain MonarchRT: "
                                     "fastest, least accurate. 1 (default) cuts the error ~3x on typical tokens. "
                                     "H100, Wan 1.3B 480p step: 1.7x stock at 1, 2.0x at -1."),
            ],
            outputs=[io.Model.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, tile_frames: int, h_split: int, w_split: int, iterations: int,
                dense_first_steps: int, dense_last_steps: int, dense_blocks: str, backend: str,
                report_error: bool, exact_local: int = 1) -> io.NodeOutput:
        settings = MonarchSettings(
            tile_frames=tile_frames, h_split=h_split, w_split=w_split, iterations=iterations,
            exact_local=exact_local, dense_first_steps=dense_first_steps, dense_last_steps=dense_last_steps,
            dense_blocks=parse_block_list(dense_blocks), backend=backend, report_error=report_error,
        )
        return io.NodeOutput(apply_monarch_attention(model, settings, node_id=cls.hidden.unique_id))


NODES = [MonarchAttention]
