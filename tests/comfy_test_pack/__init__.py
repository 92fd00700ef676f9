"""Test-only ComfyUI nodes: never used by a shipped workflow.

UMT5-XXL (the Wan text encoder), LLaVA (HunyuanVideo), Qwen2.5-VL (HunyuanVideo 1.5) and T5 (LTX-Video) cannot
be downloaded here, so tests and ``make demo`` swap ``CLIPLoader`` / ``DualCLIPLoader`` + ``CLIPTextEncode``
for ``RTVTest_TextConditioning``: a deterministic CONDITIONING of the text shape [1, tokens, 4096] (3584 for
HunyuanVideo 1.5) derived from the prompt text, with what the model family needs beside it.
"""

import hashlib
import json

import torch
from comfy_api.latest import io, ui

TEXT_DIM = 4096  # Wan's text_embedding input width (UMT5-XXL hidden size); also T5 (LTXV) and LLaVA (HunyuanVideo)

FAMILY_EXTRAS = {
    "wan": lambda g, tokens: {},
    "ltxv": lambda g, tokens: {"attention_mask": torch.ones(1, tokens, dtype=torch.long)},
    "hunyuan_video": lambda g, tokens: {"pooled_output": torch.randn(1, 768, generator=g)},
    "hunyuan_video_15": lambda g, tokens: {"pooled_output": None},
}
"""Per model family, the conditioning keys its ``extra_conds`` needs beside the text."""
TEXT_WIDTHS = {"hunyuan_video_15": 3584}
"""Text widths other than 4096: HunyuanVideo 1.5's Qwen2.5-VL 7B."""


class RTVTest_TextConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTVTest_TextConditioning",
            display_name="Test Text Conditioning (RTV tests only)",
            category="RealtimeVideo/testing",
            description="Deterministic stand-in for UMT5-XXL text conditioning; for tests with tiny models only.",
            inputs=[
                io.String.Input("text", multiline=True, default="", tooltip="Prompt; hashed into the embedding seed."),
                io.Int.Input("tokens", default=512, min=1, max=1024, tooltip="Sequence length (UMT5 pads to 512)."),
                io.Combo.Input("family", options=list(FAMILY_EXTRAS), default="wan", optional=True,
                               tooltip="Adds what the family's model needs beside the text: LTX-Video a "
                                       "text mask, HunyuanVideo a CLIP-L pooled vector, HunyuanVideo 1.5 a "
                                       "3584-wide text (Qwen2.5-VL)."),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, text: str, tokens: int, family: str = "wan") -> io.NodeOutput:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(seed)
        emb = torch.randn((1, tokens, TEXT_WIDTHS.get(family, TEXT_DIM)), generator=g)
        return io.NodeOutput([[emb, FAMILY_EXTRAS[family](g, tokens)]])


class RTVTest_CountAttentionCalls(io.ComfyNode):
    """Installs an attention override that counts the calls it sees, chaining any earlier override.

    Lets end-to-end tests prove that our override chains to one set before it (and the reverse).
    The counts go to the node's UI text and to ``RTVTest_CountAttentionCalls.counts``.
    """

    counts: dict = {}

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTVTest_CountAttentionCalls",
            display_name="Test Count Attention Calls (RTV tests only)",
            category="RealtimeVideo/testing",
            inputs=[io.Model.Input("model"), io.String.Input("label", default="counter")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, label: str) -> io.NodeOutput:
        m = model.clone()
        to = m.model_options.setdefault("transformer_options", {})
        previous = to.get("optimized_attention_override")
        counts = RTVTest_CountAttentionCalls.counts
        counts[label] = 0

        def counting_override(func, *args, **kwargs):
            counts[label] += 1
            if previous is not None:
                return previous(func, *args, **kwargs)
            return func(*args, **kwargs)

        to["optimized_attention_override"] = counting_override
        return io.NodeOutput(m)


class RTVTest_ReportAttentionCalls(io.ComfyNode):
    """Output node: after ``latent`` is computed, returns the call counts as UI text (JSON)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTVTest_ReportAttentionCalls",
            display_name="Test Report Attention Calls (RTV tests only)",
            category="RealtimeVideo/testing",
            inputs=[io.Latent.Input("latent", tooltip="Only orders this node after the sampler.")],
            outputs=[],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls, latent) -> io.NodeOutput:
        return io.NodeOutput(ui=ui.PreviewText(json.dumps(RTVTest_CountAttentionCalls.counts)))


class RTVTest_SaveTensor(io.ComfyNode):
    """Output node: writes any tensor input (e.g. a WAN_CAMERA_EMBEDDING) to the output folder as
    safetensors under the key ``tensor``, so end-to-end tests can compare node outputs exactly."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTVTest_SaveTensor",
            display_name="Test Save Tensor (RTV tests only)",
            category="RealtimeVideo/testing",
            inputs=[io.AnyType.Input("value", tooltip="A torch tensor."),
                    io.String.Input("filename_prefix", default="rtv_test/tensor")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, value, filename_prefix: str) -> io.NodeOutput:
        import folder_paths
        from safetensors.torch import save_file

        if not isinstance(value, torch.Tensor):
            raise TypeError(f"RTVTest_SaveTensor needs a tensor, got {type(value).__name__}")
        output = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output)
        file_name = f"{name}_{counter:05}_.safetensors"
        save_file({"tensor": value.detach().cpu().contiguous()}, f"{folder}/{file_name}")
        return io.NodeOutput(ui={"tensors": [{"filename": file_name, "subfolder": subfolder, "type": "output"}]})


NODE_CLASS_MAPPINGS = {
    "RTVTest_ReportAttentionCalls": RTVTest_ReportAttentionCalls,
    "RTVTest_TextConditioning": RTVTest_TextConditioning,
    "RTVTest_CountAttentionCalls": RTVTest_CountAttentionCalls,
    "RTVTest_SaveTensor": RTVTest_SaveTensor,
}
