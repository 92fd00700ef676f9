"""Shipped workflows of keyframe interpolation and hybrid keyframe video (see tools/make_workflows.py)."""

from make_workflows import WAN_MODELS_NOTE
from tiny_models import UMT5_XXL, WAN21_FLF2V_720P_14B, WAN21_FUN_CAMERA_1_3B, WAN21_T2V_1_3B, WAN21_VAE

NEGATIVE = "blurry, low quality, static, distorted, watermark, text"


def _text_nodes(prompt_text: str) -> dict:
    return {
        "3": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"},
        },
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": prompt_text}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": NEGATIVE}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
    }


def _hybrid(model: list, fill: str, stride: int, sampler: str, **extra) -> dict:
    return {
        "class_type": "RTV_HybridKeyframeVideo",
        "inputs": {
            "model": model,
            "positive": ["4", 0],
            "negative": ["5", 0],
            "vae": ["6", 0],
            "width": 832,
            "height": 480,
            "total_frames": 81,
            "keyframe_stride": stride,
            "inbetween_method": fill,
            "seed": 8,
            "steps": 30,
            "cfg": 6.0,
            "sampler_name": sampler,
            "scheduler": "simple",
            "flow_max_side": 0,
            **extra,
        },
    }


def _save(images: list, prefix: str, fps: float = 16.0) -> dict:
    return {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {
            "images": images,
            "filename_prefix": f"RealtimeVideo/{prefix}",
            "fps": fps,
            "lossless": False,
            "quality": 90,
            "method": "default",
        },
    }


def wan_t2v_interpolate_2x() -> tuple[dict, list[str]]:
    """A 33-frame Wan 2.1 T2V clip at 16 fps made 65 frames at 32 fps by flow interpolation."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_T2V_1_3B, "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        **_text_nodes("a hummingbird hovers at a red flower, its wings a blur, shallow depth of field"),
        "7": {
            "class_type": "EmptyHunyuanLatentVideo",
            "inputs": {"width": 832, "height": 480, "length": 33, "batch_size": 1},
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "latent_image": ["7", 0],
                "seed": 12,
                "steps": 30,
                "cfg": 6.0,
                "sampler_name": "uni_pc",
                "scheduler": "simple",
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["6", 0]}},
        "10": {
            "class_type": "RTV_KeyframeInterpolate",
            "inputs": {
                "images": ["9", 0],
                "frames_between": 1,
                "method": "flow",
                "multiplier": 2,
                "frames_per_gap": "",
                "pairs_per_batch": 4,
                "flow_max_side": 0,
            },
        },
        "11": _save(["10", 0], "wan_t2v_32fps", fps=32.0),
    }
    notes = [
        WAN_MODELS_NOTE
        + "\n\nKeyframe Interpolate (RTV) doubles the frame rate (multiplier 2: 33 -> 65 frames, "
        "saved at 32 fps) with weight-free optical flow: no interpolation model to download."
    ]
    return prompt, notes


def wan_fun_camera_hybrid_flow() -> tuple[dict, list[str]]:
    """Keyframes every 16 frames along an orbit (Fun-Camera 1.3B), in-betweens by optical flow."""
    prompt = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": WAN21_FUN_CAMERA_1_3B, "weight_dtype": "default"},
        },
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        **_text_nodes("a lighthouse on a cliff above a stormy sea, the camera circles slowly around it"),
        "7": {
            "class_type": "RTV_CameraTrajectory",
            "inputs": {
                "preset": "orbit_left",
                "frames": 81,
                "amount": 0.5,
                "fx": 0.5,
                "fy": 0.5,
                "cx": 0.5,
                "cy": 0.5,
                "full_motion": True,
                "orbit_distance": 3.0,
            },
        },
        "8": _hybrid(["2", 0], "flow", 16, "uni_pc", trajectory=["7", 0]),
        "9": _save(["8", 0], "wan_hybrid_flow"),
        "10": _save(["8", 2], "wan_hybrid_flow_keyframes", fps=1.0),
    }
    notes = [
        WAN_MODELS_NOTE.replace(WAN21_T2V_1_3B, WAN21_FUN_CAMERA_1_3B)
        + "\n\nHybrid Keyframe Video (RTV): the model makes the 6 keyframes (every 16 frames) in one pass, each "
        "at its pose on the orbit, then optical flow fills the 75 frames between (seconds, no model). Any Wan "
        "T2V model works too (the trajectory is then only reported)."
    ]
    return prompt, notes


def wan_flf2v_hybrid_model() -> tuple[dict, list[str]]:
    """Keyframes every 16 frames, each gap filled by Wan 2.1 FLF2V from its two keyframes."""
    prompt = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": WAN21_FLF2V_720P_14B, "weight_dtype": "default"},
        },
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 16.0}},
        **_text_nodes(
            "a paper boat drifts down a rain-soaked street gutter, close-up, the camera follows it"
        ),
        "8": _hybrid(["2", 0], "model", 16, "euler", cfg=5.5),
        "9": _save(["8", 0], "wan_hybrid_model"),
        "10": _save(["8", 2], "wan_hybrid_model_keyframes", fps=1.0),
    }
    notes = [
        WAN_MODELS_NOTE.replace(WAN21_T2V_1_3B, WAN21_FLF2V_720P_14B)
        + "\n\nHybrid Keyframe Video (RTV), inbetween_method model: keyframes every 16 frames in one pass, then "
        "each 17-frame gap is sampled by the model from its first and last keyframe (core WanFirstLastFrameToVideo "
        "semantics). model_alternating runs SV4D's dense pass instead: conditioning alternates between the left and "
        "right keyframe across steps (use euler). Optional: CLIPVisionLoader (clip_vision_h) + CLIPVisionEncode "
        "into clip_vision_output."
    ]
    return prompt, notes


WORKFLOWS = {
    "wan21_t2v_interpolate_2x.json": wan_t2v_interpolate_2x,
    "wan21_fun_camera_hybrid_keyframes_flow.json": wan_fun_camera_hybrid_flow,
    "wan21_flf2v_hybrid_keyframes_model.json": wan_flf2v_hybrid_model,
}
