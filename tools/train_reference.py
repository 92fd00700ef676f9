"""Train the project's small reference video model on procedural videos, on one GPU, in one command.

    python tools/train_reference.py --comfyui /path/to/ComfyUI        # real run (GPU), about 8 minutes
    python tools/train_reference.py --smoke                            # CPU check, tiny, ~30 s

1. a tiny Wan 2.1 VAE (ComfyUI's WanVAE, tools/reference_vae.py) on fresh procedural clips each step;
   its latent space is then folded onto Wan 2.1's fixed latent statistics;
2. a fixed dataset of clips (every prompt class, seeds 0..N-1) encoded to latents by that VAE;
3. a small Wan 2.1 T2V DiT (ComfyUI's WanModel, tools/reference_dit.py) by rectified flow on the
   latents, conditioned on the prompt classes' fixed embeddings (kernels/reference_prompts.py), the
   conditioning dropped to the unconditional prompt now and then for classifier-free guidance; EMA
   weights are what is saved;
4. metrics with the weights as saved (float16): VAE reconstruction PSNR on held-out clips, and the
   recognisability of sampled videos (tools/reference_tracking.py) for the trained DiT and for a
   randomly initialised one, sampled like a stock KSampler (euler, simple, Wan's shift 8).

Writes ``rtv_reference_wan_t2v.safetensors`` (diffusion_models) and ``rtv_reference_wan_vae.safetensors``
(vae) in the key layout ComfyUI's loaders expect, and a JSON with config, loss curves, wall times
and metrics. Needs torch, numpy, safetensors, einops and a ComfyUI tree (--comfyui or COMFYUI_PATH);
see tools/comfy_modules.py for what is stood in for when psutil or PIL are missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_modules import REPO, import_comfy  # noqa: E402

DIT_FILE = "rtv_reference_wan_t2v.safetensors"
VAE_FILE = "rtv_reference_wan_vae.safetensors"
WEIGHTS_DIR = REPO / "reference_model"
RESULTS_FILE = REPO / "bench" / "results" / "reference_training.json"
HELD_OUT_SEED = 1_000_000
"""Evaluation clips and samples use seeds from here on: never seen in training."""
VAE_SEED_BASE = 10_000_000
SAVE_DTYPE = torch.float16
LOSS_POINTS = 200
"""Loss curves are stored as this many averaged points."""


@dataclass
class Config:
    """Why these sizes: 96x128 is the test host's resolution (6 x 8 tokens per latent frame, objects
    of 2-4 tokens); 33-frame clips are 9 latent frames (432 tokens), enough for motion and occlusion
    within a clip. The VAE's base width 12 (2.0 M parameters, 4 MB) decodes 33 frames in seconds on a
    CPU; the DiT (dim 256 = two heads of Wan's head dim 128, 4 blocks, 5.9 M parameters of which the
    4096-wide text embedding is 1.1 M, 12 MB in float16) samples in well under a second per step on a
    CPU and trains in minutes on one GPU. Steps are upper bounds: the wall-clock budgets decide."""

    frames: int = 33
    height: int = 96
    width: int = 128
    seed: int = 0
    vae_dim: int = 12
    # H100 runs in bench/results/reference_training_h100_run*.json; the shipped weights are run 8's
    # VAE and run 10's DiT (reference_training.json). Runs 1-6 gave no recognisable model. Run 2
    # (5-frame clips) reached 27 dB on its first 5 frames, 13 dB by frame 12. Runs 3-5 (9-frame
    # clips, 300-330 s): 22 dB on frames 0-8, then falling steadily to 15 dB by frame 32; the same
    # weights give 22 dB again on frames 16-24 fed as a fresh clip, so it is the causal cache's long
    # history (stacked temporal convs see dozens of frames back), never trained on 9-frame clips, and
    # not the content. Run 3 (batch 48, width 12) was the best: 4 % recognisable samples, colour right
    # in 23 %. Batch 16 (run 4) and width 24 (run 5) were worse at equal time; 17-frame clips from
    # the start (run 6, batch 24) collapsed (KL -> 0.2, loss stuck at 0.26). Hence two stages: short
    # clips first (fast, stable), then the DiT's full clip length at a lower rate for the cache path.
    vae_steps: int = 6000
    vae_batch: int = 48
    vae_frames: int = 9
    vae_lr: float = 2e-3
    vae_budget_s: float = 200.0
    vae_long_steps: int = 2000
    vae_long_batch: int = 12
    vae_long_frames: int = 33
    vae_long_lr: float = 5e-4
    vae_long_budget_s: float = 130.0
    kl_weight: float = 3e-5
    object_weight: float = 8.0
    """Extra reconstruction weight of saturated pixels (reference_vae.saturation_weights). Run 7 (the
    two stages, unweighted) reached 22 dB flat over all 33 frames, yet reconstructed only red objects
    in colour; green, blue and yellow came back grey, as in every run before it."""
    clips: int = 6144
    window_share: float = 0.5
    window_scene_frames: int = 81
    """This share of the DiT's clips are 33-frame windows of 81-frame scenes (the object anywhere on
    its path, also leaving the frame), the rest whole 33-frame scenes (path centred). Run 9 saw only
    the latter and, streamed past its first chunk, kept the object in place; run 10 (with windows)
    samples as well (colour and motion right in 94 % vs 90 %) but still stops the object after the
    first chunk of the streaming sampler (make demo), so the stall is not only the data's."""
    dit_dim: int = 256
    dit_ffn: int = 1024
    dit_layers: int = 4
    dit_steps: int = 8000
    dit_batch: int = 128
    dit_lr: float = 3e-4
    dit_budget_s: float = 470.0
    """The shipped DiT (run 10) reached dit_steps, 8000, in 449 s on an H100, on run 8's VAE loaded
    with --vae-weights (the lent GPU stops a command after 10 minutes; one command does both in ~14)."""
    dit_warmup: int = 200
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    cond_drop: float = 0.1
    sample_steps: int = 20
    cfg: float = 5.0
    samples_per_class: int = 4
    eval_clips: int = 48
    classes: int = 0
    """0: every prompt class; a smaller number uses the first classes only (smoke runs)."""


@dataclass(frozen=True)
class VAEStage:
    """One VAE training stage: clips of ``frames`` frames, ``batch`` per step, peak rate ``lr``."""

    steps: int
    budget_s: float
    batch: int
    frames: int
    lr: float


class StepPlan:
    """Training steps: the configured count, lowered once the step time is known if the stage
    would overrun its wall-clock budget (the lent GPU stops a command after 10 minutes), so the
    learning-rate schedule still runs to its end. budget_s 0: no limit (a deterministic count)."""

    MEASURE_FROM, MEASURE_TO = 10, 40  # steps after warm-up (cuDNN autotune, allocator)

    def __init__(self, steps: int, budget_s: float):
        self.total, self.budget_s = steps, budget_s

    def __iter__(self):
        start = time.time()
        step = 0
        while step < self.total:
            if step == self.MEASURE_FROM:
                measure_start = time.time()
            if step == self.MEASURE_TO and self.budget_s > 0:
                per_step = (time.time() - measure_start) / (self.MEASURE_TO - self.MEASURE_FROM)
                affordable = self.MEASURE_TO + int((self.budget_s - (time.time() - start)) / per_step)
                if affordable < self.total:
                    print(f"[plan] {per_step * 1000:.0f} ms/step: {affordable} of {self.total} steps fit "
                          f"{self.budget_s:.0f} s", flush=True)
                    self.total = max(affordable, self.MEASURE_TO + 1)
            yield step
            step += 1


SMOKE = dict(vae_budget_s=0.0, dit_budget_s=0.0, frames=9, height=32, width=32, vae_dim=4, vae_steps=8, vae_batch=2, vae_frames=5,
             vae_long_steps=4, vae_long_batch=2, vae_long_frames=9, vae_long_budget_s=0.0, clips=16,
             dit_dim=128, dit_ffn=256, dit_layers=1, dit_steps=30, dit_batch=2, dit_lr=2e-3, dit_warmup=5,
             sample_steps=3, samples_per_class=1, eval_clips=2, classes=2)


def averaged_curve(values: list[float], points: int = LOSS_POINTS) -> list[list[float]]:
    """[[step, mean loss over the window], ...] with at most ``points`` windows."""
    window = max(1, len(values) // points)
    return [[i + window - 1, sum(values[i:i + window]) / len(values[i:i + window])]
            for i in range(0, len(values), window)]


class Trainer:
    def __init__(self, cfg: Config, device: torch.device, compile_dit: bool = False, vae_weights: Path | None = None):
        import procedural_video
        import reference_dit
        import reference_tracking
        import reference_vae

        from rtv.kernels.reference_prompts import PROMPT_TEXTS, class_conditioning_table

        self.video, self.vae_lib, self.dit_lib, self.tracking = procedural_video, reference_vae, reference_dit, \
            reference_tracking
        self.cfg, self.device, self.compile_dit, self.vae_weights = cfg, device, compile_dit, vae_weights
        self.prompts = PROMPT_TEXTS[:cfg.classes or len(PROMPT_TEXTS)]
        table = class_conditioning_table()
        # rows: the classes in use, then the unconditional prompt (always the table's last row)
        self.conditioning = torch.cat([table[:len(self.prompts)], table[-1:]]).to(device)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        self.stats = reference_vae.wan21_latent_statistics()
        self.report: dict = {"config": dataclasses.asdict(cfg), "wall_s": {}}

    def clips(self, class_ids, seeds, frames=None) -> torch.Tensor:
        return self.video.generate_clips(class_ids, seeds, frames or self.cfg.frames, self.cfg.height,
                                         self.cfg.width, device=self.device)

    # ------------------------------------------------------------------------------------ VAE
    def train_vae(self):
        cfg, lib = self.cfg, self.vae_lib
        torch.manual_seed(cfg.seed)
        vae = lib.build_vae(cfg.vae_dim).to(self.device).train()
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0, betas=(0.9, 0.99))
        pick = torch.Generator().manual_seed(cfg.seed + 1)
        noise = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        losses, parts, stages = [], [], []
        short = VAEStage(cfg.vae_steps, cfg.vae_budget_s, cfg.vae_batch, cfg.vae_frames, cfg.vae_lr)
        long = VAEStage(cfg.vae_long_steps, cfg.vae_long_budget_s, cfg.vae_long_batch, cfg.vae_long_frames,
                        cfg.vae_long_lr)
        seed = VAE_SEED_BASE
        t0 = time.time()
        for index, stage in enumerate((short, long)):
            if stage.steps <= 0:
                continue
            plan = StepPlan(stage.steps, stage.budget_s)
            first_loss = len(losses)
            for step in plan:
                for group in opt.param_groups:
                    group["lr"] = stage.lr * self.dit_lib.lr_factor(step, plan.total, max(plan.total // 20, 1))
                classes = torch.randint(0, len(self.prompts), (stage.batch,), generator=pick).tolist()
                pixels = lib.clips_to_pixels(self.clips(classes, list(range(seed, seed + stage.batch)), stage.frames))
                seed += stage.batch
                with self.autocast:
                    loss, part = lib.vae_loss(vae, pixels, cfg.kl_weight, self.stats, noise, cfg.object_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
                opt.step()
                losses.append(float(loss))
                parts.append(part)
                if step % 100 == 0 or step == plan.total - 1:
                    print(f"[vae {index + 1}] step {step} ({stage.frames}-frame clips) loss {losses[-1]:.4f} "
                          f"rec {part['reconstruction']:.4f} kl {part['kl']:.3f} ({time.time() - t0:.0f} s)", flush=True)
            tail = losses[max(first_loss, len(losses) - 20):]
            stages.append({**dataclasses.asdict(stage), "steps": plan.total, "steps_configured": stage.steps,
                           "last_loss": sum(tail) / len(tail)})
        vae.eval()
        self.evaluate_vae(vae, fold=True)
        self.report["vae"] |= {"steps": len(losses), "stages": stages, "loss_curve": averaged_curve(losses),
                               "reconstruction_curve": averaged_curve([p["reconstruction"] for p in parts])}
        return vae

    def load_vae(self, path: Path):
        """A VAE this script trained and saved before (its latents already normalised): the DiT can
        be trained again on the same VAE, e.g. in a second 10-minute call on the lent GPU."""
        from safetensors.torch import load_file

        vae = self.vae_lib.build_vae(self.cfg.vae_dim)
        vae.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        vae = vae.to(self.device).eval()
        self.evaluate_vae(vae, fold=False)
        self.report["vae"]["loaded_from"] = str(path)
        return vae

    @torch.no_grad()
    def evaluate_vae(self, vae, fold: bool) -> None:
        lib = self.vae_lib
        held_out = self.held_out_clips()
        before = lib.latent_space_moments(vae, lib.clips_to_pixels(held_out), self.stats)
        if fold:
            lib.fold_latent_normalisation(vae, *before, self.stats)
            self.round_trip_weights(vae)
        after = lib.latent_space_moments(vae, lib.clips_to_pixels(held_out), self.stats)
        recon = torch.cat([lib.reconstruct(vae, held_out[i:i + 4]) for i in range(0, len(held_out), 4)])
        self.report["vae"] = {
            "params": sum(p.numel() for p in vae.parameters()),
            "psnr_db": lib.psnr(recon, held_out),
            # a fall along the clip means the causal cache path is under-trained (runs 2-5)
            "psnr_per_frame_db": [round(lib.psnr(recon[:, t], held_out[:, t]), 2) for t in range(held_out.shape[1])],
            # the ceiling for the DiT's samples: does the class survive this VAE's round trip?
            "recognisable_reconstructions": self.tracking.recognisability(
                recon.cpu(), [self.prompts[i % len(self.prompts)] for i in range(len(recon))])["rate"],
            "reconstructions_per_colour": self.per_colour(recon.cpu()),
            "latent_moments_before_fold": {"mean": before[0].tolist(), "std": before[1].tolist()},
            "latent_moments_after_fold": {"mean": after[0].tolist(), "std": after[1].tolist()},
        }
        print(f"[vae] held-out PSNR {self.report['vae']['psnr_db']:.2f} dB, colour found per class colour "
              f"{self.report['vae']['reconstructions_per_colour']}", flush=True)

    def per_colour(self, videos: torch.Tensor) -> dict:
        """Share of held-out videos per class colour whose main object is found in that colour."""
        from rtv.kernels.reference_prompts import prompt_class

        found: dict[str, list[bool]] = {}
        for i, video in enumerate(videos):
            prompt = self.prompts[i % len(self.prompts)]
            found.setdefault(prompt_class(prompt).colour, []).append(self.tracking.check_video(video, prompt).colour_ok)
        return {colour: sum(ok) / len(ok) for colour, ok in found.items()}

    def held_out_clips(self) -> torch.Tensor:
        n = self.cfg.eval_clips
        return self.clips([i % len(self.prompts) for i in range(n)], [HELD_OUT_SEED + i for i in range(n)])

    def round_trip_weights(self, module: torch.nn.Module) -> None:
        """Metrics are measured on the weights as they are saved."""
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(p.to(SAVE_DTYPE).to(p.dtype))

    # ------------------------------------------------------------------------------- dataset
    @torch.no_grad()
    def encode_dataset(self, vae) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        mean, std = (s.to(self.device).view(1, -1, 1, 1, 1) for s in self.stats)
        classes = torch.arange(cfg.clips) % len(self.prompts)
        # which clips are windows of longer scenes, and where each window starts
        g = torch.Generator().manual_seed(cfg.seed + 4)
        windowed = torch.rand(cfg.clips, generator=g) < cfg.window_share
        first = torch.randint(0, max(cfg.window_scene_frames - cfg.frames, 0) + 1, (cfg.clips,), generator=g)
        latents = []
        batch = 32 if self.device.type == "cuda" else 4
        for start in range(0, cfg.clips, batch):
            ids = classes[start:start + batch].tolist()
            seeds = list(range(start, start + len(ids)))
            part = windowed[start:start + batch]
            window = {"scene_frames": cfg.window_scene_frames, "first_frames": first[start:start + batch][part]}
            pixels = torch.empty((len(ids), cfg.frames, cfg.height, cfg.width, 3), device=self.device)
            for chosen, layout in ((~part, {}), (part, window)):  # a clip renders the same in any batch
                if chosen.any():
                    picked = chosen.nonzero().squeeze(1).tolist()
                    pixels[chosen.to(self.device)] = self.video.generate_clips(
                        [ids[i] for i in picked], [seeds[i] for i in picked], cfg.frames, cfg.height, cfg.width,
                        device=self.device, **layout)
            pixels = self.vae_lib.clips_to_pixels(pixels)
            with self.autocast:
                mu = vae.encode(pixels).float()
            latents.append(((mu - mean) / std).to(torch.bfloat16))
        return torch.cat(latents), classes.to(self.device)

    # ------------------------------------------------------------------------------------ DiT
    def train_dit(self, latents: torch.Tensor, classes: torch.Tensor):
        cfg, lib = self.cfg, self.dit_lib
        model = lib.build_dit(cfg.dit_dim, cfg.dit_ffn, cfg.dit_layers, cfg.seed).to(self.device).train()
        ema = lib.EMA(model, cfg.ema_decay)
        step_model = torch.compile(model) if self.compile_dit else model
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "norm" in name or name.endswith("modulation") else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.dit_lr, betas=(0.9, 0.99))
        pick = torch.Generator(device=self.device).manual_seed(cfg.seed + 3)
        unconditional = len(self.prompts)
        losses = []
        plan = StepPlan(cfg.dit_steps, cfg.dit_budget_s)
        t0 = time.time()
        for step in plan:
            for group in opt.param_groups:
                group["lr"] = cfg.dit_lr * lib.lr_factor(step, plan.total, cfg.dit_warmup)
            idx = torch.randint(0, len(latents), (cfg.dit_batch,), device=self.device, generator=pick)
            cond = classes[idx]
            dropped = torch.rand(cfg.dit_batch, device=self.device, generator=pick) < cfg.cond_drop
            cond = torch.where(dropped, torch.full_like(cond, unconditional), cond)
            with self.autocast:
                loss = lib.flow_matching_loss(step_model, latents[idx].float(), self.conditioning[cond], pick)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema.update(model)
            losses.append(float(loss))
            if step % 250 == 0 or step == plan.total - 1:
                print(f"[dit] step {step} loss {losses[-1]:.4f} ({time.time() - t0:.0f} s)", flush=True)
        self.report["dit"] = {"steps": plan.total, "steps_configured": cfg.dit_steps,
                              "loss_curve": averaged_curve(losses), "loss_first": losses[:10], "loss_last": losses[-10:],
                              "params": sum(p.numel() for p in model.parameters()),
                              "text_embedding_params": sum(p.numel() for p in model.text_embedding.parameters())}
        self.round_trip_weights(ema.model)
        return ema.model

    # -------------------------------------------------------------------------------- metrics
    @torch.no_grad()
    def sample_videos(self, dit, vae) -> tuple[torch.Tensor, list[str]]:
        cfg = self.cfg
        mean, std = (s.to(self.device).view(1, -1, 1, 1, 1) for s in self.stats)
        latent_shape = (16, 1 + (cfg.frames - 1) // 4, cfg.height // 8, cfg.width // 8)
        videos, prompts = [], []
        k = cfg.samples_per_class
        for c, prompt in enumerate(self.prompts):
            g = torch.Generator().manual_seed(HELD_OUT_SEED + c)
            with self.autocast:
                x0 = self.dit_lib.sample_euler(dit, self.conditioning[c:c + 1].expand(k, -1, -1),
                                               self.conditioning[-1:], (k, *latent_shape), cfg.sample_steps, cfg.cfg, g)
                pixels = vae.decode(x0.float() * std + mean)
            videos.append(((pixels.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).cpu())
            prompts += [prompt] * k
        return torch.cat(videos), prompts

    def recognisability(self, dit, vae) -> dict:
        videos, prompts = self.sample_videos(dit, vae)
        result = self.tracking.recognisability(videos, prompts)
        return {k: v for k, v in result.items() if k != "verdicts"} | {"verdicts": result["verdicts"]}

    def random_dit(self):
        """A DiT as a random-weight test model is: Wan init with a random (not zero) output head."""
        cfg = self.cfg
        model = self.dit_lib.build_dit(cfg.dit_dim, cfg.dit_ffn, cfg.dit_layers, cfg.seed + 1000)
        torch.nn.init.xavier_uniform_(model.head.head.weight)
        return model.to(self.device).eval()

    # ----------------------------------------------------------------------------------- save
    def save(self, dit, vae, out_dir: Path, note: str) -> dict:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"rtv_reference": note, "config": json.dumps(dataclasses.asdict(self.cfg))}
        files = {}
        for module, name in ((dit, DIT_FILE), (vae, VAE_FILE)):
            sd = {k: v.detach().to("cpu", SAVE_DTYPE).contiguous() for k, v in module.state_dict().items()}
            path = out_dir / name
            tmp = path.with_suffix(".tmp")
            save_file(sd, str(tmp), metadata=meta)
            os.replace(tmp, path)
            files[name] = {"path": str(path), "bytes": path.stat().st_size}
        return files

    def run(self, weights_dir: Path, results_file: Path) -> dict:
        t_all = time.time()
        t0 = time.time()
        vae = self.load_vae(self.vae_weights) if self.vae_weights else self.train_vae()
        self.report["wall_s"]["vae"] = time.time() - t0
        t0 = time.time()
        latents, classes = self.encode_dataset(vae)
        self.report["wall_s"]["dataset"] = time.time() - t0
        self.report["dataset"] = {"clips": len(latents), "latent_shape": list(latents.shape[1:]),
                                  "latent_std": float(latents.float().std()),
                                  "latent_mean": float(latents.float().mean())}
        t0 = time.time()
        dit = self.train_dit(latents, classes).eval()
        self.report["wall_s"]["dit"] = time.time() - t0
        del latents
        t0 = time.time()
        self.report["recognisability"] = self.recognisability(dit, vae)
        self.report["recognisability_random_weights"] = self.recognisability(self.random_dit(), vae)
        self.report["wall_s"]["metrics"] = time.time() - t0
        self.report["files"] = self.save(dit, vae, weights_dir, "trained by tools/train_reference.py")
        self.report["wall_s"]["total"] = time.time() - t_all
        self.report["environment"] = {
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "python": platform.python_version()}
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(self.report, indent=1))
        rec = self.report["recognisability"]
        print(json.dumps({"psnr_db": self.report["vae"]["psnr_db"], "recognisable": rec["rate"],
                          "random_weights_recognisable": self.report["recognisability_random_weights"]["rate"],
                          "wall_s": self.report["wall_s"], "files": self.report["files"],
                          "results": str(results_file)}, indent=1))
        return self.report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", help="ComfyUI tree (default: $COMFYUI_PATH, else .host/ComfyUI)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings on the CPU, outputs in a temp dir")
    ap.add_argument("--out", help="folder for the weights and the JSON (default: reference_model/ and "
                                  "bench/results/; --smoke: a new temp dir)")
    ap.add_argument("--device", default=None, help="default: cuda when available (never for --smoke)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the DiT for training")
    ap.add_argument("--vae-weights", type=Path, help="skip VAE training: use this VAE saved by an earlier run")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    for f in dataclasses.fields(Config):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None)
    args = ap.parse_args(argv)

    overrides = dict(SMOKE) if args.smoke else {}
    overrides.update({f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                      if getattr(args, f.name) is not None})
    cfg = Config(**overrides)
    device = torch.device("cpu" if args.smoke else (args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    if args.threads:
        torch.set_num_threads(args.threads)
    import_comfy(args.comfyui, cpu=device.type == "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # the VAE's causal chunks repeat a few fixed conv shapes

    if args.out or args.smoke:
        out = Path(args.out or tempfile.mkdtemp(prefix="rtv-reference-smoke-"))
        weights_dir, results_file = out, out / "reference_training.json"
    else:
        weights_dir, results_file = WEIGHTS_DIR, RESULTS_FILE
    Trainer(cfg, device, compile_dit=args.compile, vae_weights=args.vae_weights).run(weights_dir, results_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
