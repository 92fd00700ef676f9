"""Shipped workflows of the camera nodes (see tools/make_workflows.py)."""

from tiny_models import EXAMPLE_IMAGE, UMT5_XXL, WAN21_FUN_CAMERA_1_3B, WAN21_VAE

FUN_CAMERA_NOTE = (
    "Models (ComfyUI's Wan 2.1 repackaged release, Comfy-Org/Wan_2.1_ComfyUI_repackaged):\n"
    f"- models/diffusion_models/{WAN21_FUN_CAMERA_1_3B}\n"
    f"- models/text_encoders/{UMT5_XXL}\n"
    f"- models/vae/{WAN21_VAE}\n"
    "Optional, as in ComfyUI's own Fun-Camera template: models/clip_vision/clip_vision_h.safetensors with "
    "CLIPVisionLoader + CLIPVisionEncode (start image) into clip_vision_output of WanCameraImageToVideo.\n\n"
    "Load your start image in LoadImage and set width/height of the Plücker node to its aspect (multiples "
    "of 16); WanCameraImageToVideo takes size and length from that node. Check the camera move in the "
    "trajectory preview before rendering; swap Camera Trajectory (RTV) for Camera Keyframes (RTV) or "
    "Load Camera Trajectory (RTV) (RealEstate10K / CameraCtrl .txt) for other moves."
)


def wan_fun_camera_orbit() -> tuple[dict, list[str]]:
    """Wan 2.1 Fun-Camera 1.3B: a start image, an orbit trajectory embedded as Plücker rays."""
    prompt = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": WAN21_FUN_CAMERA_1_3B, "weight_dtype": "default"},
        },
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        "3": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"},
        },
        "4": {
            "class_type": "CLIPTextEncode",
            "inputs": {
                "clip": ["3", 0],
                "text": "a child's crayon drawing of a girl with wild yellow hair and a pink dress on a green hill "
                "under a blue sky, the camera slowly circles around her",
            },
        },
        "5": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["3", 0], "text": "blurry, low quality, static, distorted, watermark, text"},
        },
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "7": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_IMAGE}},
        "8": {
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
        "9": {
            "class_type": "RTV_PluckerEmbedding",
            "inputs": {"trajectory": ["8", 0], "width": 512, "height": 512, "start_frame": 0, "length": 81},
        },
        "10": {
            "class_type": "WanCameraImageToVideo",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["5", 0],
                "vae": ["6", 0],
                "width": ["9", 1],
                "height": ["9", 2],
                "length": ["9", 3],
                "batch_size": 1,
                "start_image": ["7", 0],
                "camera_conditions": ["9", 0],
            },
        },
        "11": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["10", 0],
                "negative": ["10", 1],
                "latent_image": ["10", 2],
                "seed": 11,
                "steps": 20,
                "cfg": 6.0,
                "sampler_name": "uni_pc",
                "scheduler": "simple",
                "denoise": 1.0,
            },
        },
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["6", 0]}},
        "13": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["12", 0],
                "filename_prefix": "RealtimeVideo/wan_fun_camera_orbit",
                "fps": 16.0,
                "lossless": False,
                "quality": 90,
                "method": "default",
            },
        },
        "14": {
            "class_type": "RTV_TrajectoryPreview",
            "inputs": {"trajectory": ["8", 0], "preview_width": 1536, "frusta": 9},
        },
        "15": {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}},
    }
    return prompt, [FUN_CAMERA_NOTE]


WORKFLOWS = {"wan21_fun_camera_orbit.json": wan_fun_camera_orbit}
