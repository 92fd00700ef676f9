"""Global time index for Wan: explicit temporal RoPE positions per latent frame of a model call.

ComfyUI's ``WanModel.rope_encode`` places the frames of a call at t_start, t_start+1, ... RoPE only
sees position differences, so shifting a whole chunk changes nothing; the global index matters where
frames of different chunks meet in one attention (an anchor frame from chunk 0 in front of chunk k,
cached keys). This object patch lets the streaming sampler give every frame its global latent index:
``transformer_options["rtv_frame_positions"]`` (one position per latent frame of the call, including
prepended context frames). Calls without it, or with another frame count, keep ComfyUI's positions.
"""

from __future__ import annotations

import torch

FRAME_POSITIONS_KEY = "rtv_frame_positions"


class FramePositions:
    """Mutable holder the sampler updates between chunks (one model clone for the whole run)."""

    def __init__(self):
        self._positions: torch.Tensor | None = None
        self._on_device: dict = {}

    def __deepcopy__(self, memo):
        return self

    @property
    def positions(self) -> torch.Tensor | None:
        return self._positions

    @positions.setter
    def positions(self, value: torch.Tensor | None) -> None:
        # A copy already on a device keeps its storage and takes the new values: a CUDA graph that
        # captured it (patches/cuda_graphs.py) then replays with this chunk's positions.
        self._positions = value
        for key, buffer in list(self._on_device.items()):
            if value is None or buffer.shape != value.shape:
                del self._on_device[key]
            else:
                buffer.copy_(value)

    def on(self, device, dtype) -> torch.Tensor:
        """The positions on ``device``: copied once, then updated in place by the setter (a host-to-device
        copy in every model call would stall the launch queue and cannot be captured in a CUDA graph)."""
        key = (torch.device(device) if device is not None else None, dtype)
        if key not in self._on_device:
            self._on_device[key] = self._positions.to(device=device, dtype=dtype, copy=True)
        return self._on_device[key]


def wan_rope_encode_with_positions(original, diffusion_model):
    """Replacement for ``diffusion_model.rope_encode`` honouring FRAME_POSITIONS_KEY."""

    def rope_encode(t, h, w, t_start=0, steps_t=None, steps_h=None, steps_w=None, device=None, dtype=None,
                    transformer_options=None):
        transformer_options = transformer_options or {}
        holder = transformer_options.get(FRAME_POSITIONS_KEY)
        positions = getattr(holder, "positions", None)
        pt, ph, pw = diffusion_model.patch_size
        frames = (t + pt // 2) // pt
        if positions is None or len(positions) != frames or steps_t is not None:
            return original(t, h, w, t_start=t_start, steps_t=steps_t, steps_h=steps_h, steps_w=steps_w,
                            device=device, dtype=dtype, transformer_options=transformer_options)
        rows, cols = (h + ph // 2) // ph, (w + pw // 2) // pw
        rope_options = transformer_options.get("rope_options") or {}
        ids = torch.zeros((frames, rows, cols, 3), device=device, dtype=dtype)
        t_ids = holder.on(device, dtype) + rope_options.get("shift_t", 0.0) + t_start
        ids[..., 0] = t_ids.reshape(-1, 1, 1)
        # same as ComfyUI's linspace(shift, shift + (n - 1) * scale, n) for rows and columns
        row_ids = torch.arange(rows, device=device, dtype=dtype) * rope_options.get("scale_y", 1.0)
        col_ids = torch.arange(cols, device=device, dtype=dtype) * rope_options.get("scale_x", 1.0)
        ids[..., 1] = (row_ids + rope_options.get("shift_y", 0.0)).reshape(1, -1, 1)
        ids[..., 2] = (col_ids + rope_options.get("shift_x", 0.0)).reshape(1, 1, -1)
        return diffusion_model.rope_embedder(ids.reshape(1, -1, 3)).movedim(1, 2)

    return rope_encode


def apply_frame_positions(model, holder: FramePositions | None = None) -> tuple[object, FramePositions]:
    """Clone ``model`` with the position-aware rope_encode; returns the clone and its holder (``holder``: one
    already serving another model, e.g. the other expert of Wan 2.2 A14B, so one assignment moves both)."""
    m = model.clone()
    holder = holder if holder is not None else FramePositions()
    m.model_options.setdefault("transformer_options", {})[FRAME_POSITIONS_KEY] = holder
    diffusion_model = m.get_model_object("diffusion_model")
    m.add_object_patch("diffusion_model.rope_encode",
                       wan_rope_encode_with_positions(m.get_model_object("diffusion_model.rope_encode"), diffusion_model))
    return m, holder
