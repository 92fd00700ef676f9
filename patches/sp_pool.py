"""The sequence-parallel worker pool: ranks 1..W-1 as child processes, the ComfyUI process as rank 0.

Rank 0 (the process that runs the sampler) starts W - 1 workers (``sp_worker.py``, one per further
GPU, or CPU processes with gloo), meets them in one torch.distributed group through a TCPStore on
localhost (port picked by the OS), and drives every collective:

- ``weights``: the DiT's constructor settings and every tensor of its state dict, broadcast from
  rank 0's loaded model (LoRAs already merged) whenever the weights change; a worker builds the
  same ``WanModel`` without initialising it and receives the values (one copy per GPU).
- ``forward``: the call's small settings (``SPCall``) and its tensors; every rank runs
  ``sp_wan_forward`` on its shard; rank 0 returns the gathered output to ComfyUI.
- ``stop``: workers leave the group and exit.

Workers also exit when rank 0 goes away without a word (a watchdog on the parent pid, and gloo /
NCCL errors on a closed connection), and report their own failures through the store, so rank 0
raises the worker's error instead of hanging. ``close`` always ends with the processes reaped
(terminate, then kill).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .sp_comm import SPComm
from .sp_forward import RankRuntime, SPCall, sp_wan_forward

HOST = "127.0.0.1"
BOOTSTRAP_KEY = "rtv_sp/bootstrap"
READY_KEY = "rtv_sp/ready/{}"
ERROR_KEY = "rtv_sp/error/{}"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
WORKER_SCRIPT = Path(__file__).with_name("sp_worker.py")
PACK_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = __name__.rsplit(".", 2)[0]

log = logging.getLogger("RealtimeVideo")


class WorkerError(RuntimeError):
    pass


@dataclass
class PoolConfig:
    world: int
    backend: str  # "gloo" (CPU) or "nccl" (one GPU per rank)
    device: torch.device  # rank 0's device
    threads: int = 1  # CPU threads per worker
    timeout_s: float = 1800.0  # a collective that waits longer than this fails


@dataclass
class Bootstrap:
    """What a worker needs before it can import anything of ComfyUI or of this pack."""

    pack_name: str
    pack_root: str
    comfy_dir: str
    comfy_args: bytes  # pickled vars(comfy.cli_args.args) (may hold ComfyUI enums)
    backend: str
    devices: list[str]  # per rank
    threads: int
    timeout_s: float
    parent_pid: int


@dataclass
class WeightsSpec:
    config: dict  # WanModel constructor settings
    cast_weights: bool  # ComfyUI manual_cast ops (weights stored in another dtype than compute)
    dtype: torch.dtype
    entries: list = field(default_factory=list)  # (name, shape, dtype) in state-dict order


# ------------------------------------------------------------------------------------------- model copy


def wan_config(dm) -> dict:
    """Constructor settings that rebuild ``dm`` (a plain ``WanModel``)."""
    emb_pos = getattr(dm.img_emb, "emb_pos", None) if dm.img_emb is not None else None
    return dict(
        model_type=dm.model_type, patch_size=tuple(dm.patch_size), text_len=dm.text_len, in_dim=dm.in_dim,
        dim=dm.dim, ffn_dim=dm.ffn_dim, freq_dim=dm.freq_dim, text_dim=dm.text_dim, out_dim=dm.out_dim,
        num_heads=dm.num_heads, num_layers=dm.num_layers, window_size=tuple(dm.window_size),
        qk_norm=dm.qk_norm, cross_attn_norm=dm.cross_attn_norm, eps=dm.eps,
        flf_pos_embed_token_number=None if emb_pos is None else emb_pos.shape[1],
        in_dim_ref_conv=None if dm.ref_conv is None else dm.ref_conv.in_channels,
    )  # fmt: skip


def build_wan(spec: WeightsSpec, device) -> torch.nn.Module:
    """An uninitialised ``WanModel`` with exactly the tensors of ``spec`` (values arrive by broadcast)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    ops = comfy.ops.manual_cast if spec.cast_weights else comfy.ops.disable_weight_init
    dm = WanModel(**spec.config, device="meta", dtype=spec.dtype, operations=ops)
    dm = dm.to_empty(device=device)
    params = dict(dm.named_parameters())
    for name, shape, dtype in spec.entries:
        if name in params and params[name].dtype != dtype:
            params[name].data = torch.empty(shape, dtype=dtype, device=device)
    return dm.eval().requires_grad_(False)


def weights_spec(dm) -> WeightsSpec:
    """Describe rank 0's model; raise a ValueError if a worker could not hold the same tensors."""
    lowvram = [n for n, m in dm.named_modules() if getattr(m, "weight_function", None) or getattr(m, "bias_function", None)]
    if lowvram:
        raise ValueError(
            "[RTV] sequence parallel needs the model's weights fully loaded (each GPU holds a copy); this model "
            f"is patched on the fly ({lowvram[0]} ...): free GPU memory or start ComfyUI with --highvram"
        )
    cast = bool(getattr(dm.blocks[0].self_attn.q, "comfy_cast_weights", False))
    spec = WeightsSpec(wan_config(dm), cast, dm.dtype or dm.blocks[0].self_attn.q.weight.dtype)
    spec.entries = [(k, tuple(v.shape), v.dtype) for k, v in dm.state_dict().items()]
    reference = build_wan(spec, "meta").state_dict()
    theirs = {k: tuple(v.shape) for k, v in reference.items()}
    ours = {k: s for k, s, _ in spec.entries}
    if theirs != ours:
        diff = sorted(set(theirs.items()) ^ set(ours.items()))[:3]
        raise ValueError(
            "[RTV] sequence parallel cannot copy this model to its ranks (only plain Wan weights in fp32, fp16 or "
            f"bf16 are supported; load it with weight_dtype 'default'): differing tensors {diff}"
        )
    return spec


# ------------------------------------------------------------------------------------------- protocol


def _broadcast_object(obj, device):
    holder = [obj]
    dist.broadcast_object_list(holder, src=0, device=device if device.type == "cuda" else None)
    return holder[0]


def _broadcast_tensors(tensors: list, device) -> None:
    for t in tensors:
        if t is not None:
            dist.broadcast(t, src=0)


def _tensor_spec(t):
    return None if t is None else (tuple(t.shape), t.dtype)


def _empty_like_spec(spec, device):
    return None if spec is None else torch.empty(spec[0], dtype=spec[1], device=device)


class WorkerPool:
    """Rank 0's end of the group. One per process (torch.distributed has one default group)."""

    def __init__(self, config: PoolConfig):
        self.config = config
        self.procs: list[subprocess.Popen] = []
        self.store = None
        self.runtime = RankRuntime(SPComm(0, config.world))
        self.weights_key = None
        self.healthy = False
        self.closed = False

    # ------------------------------------------------------------------------------ life cycle
    def worker_devices(self) -> list[str]:
        c = self.config
        if c.backend != "nccl":
            return ["cpu"] * c.world
        first = c.device.index if c.device.index is not None else torch.cuda.current_device()
        others = [i for i in range(torch.cuda.device_count()) if i != first]
        if len(others) < c.world - 1:
            raise ValueError(
                f"[RTV] sequence parallel over {c.world} GPUs: only {len(others) + 1} are visible; lower 'ranks'"
            )
        return [f"cuda:{first}"] + [f"cuda:{i}" for i in others[: c.world - 1]]

    def start(self) -> WorkerPool:
        c = self.config
        devices = self.worker_devices()
        self.store = dist.TCPStore(HOST, 0, c.world, True, timeout=timedelta(seconds=START_TIMEOUT_S),
                                   wait_for_workers=False)
        import comfy.cli_args

        comfy_dir = str(Path(comfy.cli_args.__file__).resolve().parents[1])
        boot = Bootstrap(PACK_NAME, str(PACK_ROOT), comfy_dir, pickle.dumps(vars(comfy.cli_args.args)), c.backend,
                         devices, c.threads, c.timeout_s, os.getpid())
        self.store.set(BOOTSTRAP_KEY, pickle.dumps(asdict(boot)))
        env = {**os.environ, "OMP_NUM_THREADS": str(c.threads), "MKL_NUM_THREADS": str(c.threads)}
        try:
            for rank in range(1, c.world):
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(WORKER_SCRIPT), HOST, str(self.store.port), str(rank), str(c.world)],
                    env=env, stdin=subprocess.DEVNULL,
                ))  # fmt: skip
            self._wait_ready()
            dist.init_process_group(c.backend, store=self.store, rank=0, world_size=c.world,
                                    timeout=timedelta(seconds=c.timeout_s), device_id=_nccl_device(c.backend, torch.device(devices[0])))
        except BaseException:
            self.close()
            raise
        self.healthy = True
        log.info("[RTV] sequence parallel: %d ranks (%s) started, worker pids %s", c.world, c.backend, self.pids)
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _wait_ready(self) -> None:
        keys = [READY_KEY.format(r) for r in range(1, self.config.world)]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.store.check(keys):
            dead = [(r + 1, p.returncode) for r, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                raise WorkerError(f"[RTV] sequence parallel: worker rank {dead[0][0]} exited with code "
                                  f"{dead[0][1]} while starting{self._worker_errors()}")
            if time.monotonic() > deadline:
                raise WorkerError(f"[RTV] sequence parallel: workers not ready after {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def _worker_errors(self) -> str:
        if self.store is None:
            return ""
        found = []
        for rank in range(1, self.config.world):
            key = ERROR_KEY.format(rank)
            try:
                if self.store.check([key]):
                    found.append(f"rank {rank}: {self.store.get(key).decode(errors='replace').strip()}")
            except Exception:  # the store went away with the group: nothing more to report
                break
        return (":\n" + "\n".join(found)) if found else ""

    def close(self) -> None:
        """Stop the workers (politely when the group is usable) and reap them; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.healthy:
            try:
                _broadcast_object(("stop", None), self.config.device)
            except Exception as e:  # the workers are stopped below in any case
                log.warning("[RTV] sequence parallel: stop message failed (%s)", e)
        self.healthy = False
        if dist.is_initialized():
            dist.destroy_process_group()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.runtime.kv.release()
        self.store = None
        log.info("[RTV] sequence parallel: worker pool stopped")

    # ------------------------------------------------------------------------------ calls
    def _guarded(self, fn, *args):
        """Run a collective step; any failure leaves the group unusable: report, stop, raise."""
        if not self.healthy:
            raise WorkerError("[RTV] sequence parallel: the worker pool is stopped")
        try:
            return fn(*args)
        except BaseException as e:
            self.healthy = False
            errors = self._worker_errors()
            self.close()
            if errors:
                raise WorkerError(f"[RTV] sequence parallel: a worker failed{errors}") from e
            raise

    def sync_weights(self, dm, key) -> None:
        if key == self.weights_key:
            return
        spec = weights_spec(dm)  # raises before any collective: the pool stays usable
        self._guarded(self._send_weights, dm, spec)
        self.weights_key = key

    def _send_weights(self, dm, spec: WeightsSpec) -> None:
        device = self.config.device
        _broadcast_object(("weights", spec), device)
        for t in dm.state_dict().values():
            dist.broadcast(t.detach().to(device).contiguous(), src=0)

    def forward(self, dm, x, timestep, context, clip_fea, call: SPCall) -> torch.Tensor:
        try:
            blob = pickle.dumps(call)
        except Exception as e:
            raise ValueError(
                "[RTV] sequence parallel: the model's attention patch cannot be sent to the worker processes "
                f"({type(call.attention_override).__name__}: {e}); put that patch after the sequence-parallel "
                "node only if it is one of this pack's, or remove it"
            ) from e
        return self._guarded(self._forward, dm, blob, [x, timestep, context, clip_fea], call)

    def _forward(self, dm, blob: bytes, tensors: list, call: SPCall) -> torch.Tensor:
        device = self.config.device
        tensors = [None if t is None else t.to(device).contiguous() for t in tensors]
        _broadcast_object(("forward", (blob, [_tensor_spec(t) for t in tensors])), device)
        _broadcast_tensors(tensors, device)
        return sp_wan_forward(dm, *tensors, call, self.runtime)


# ------------------------------------------------------------------------------------------- worker side


def _nccl_device(backend: str, device: torch.device) -> torch.device | None:
    """The rank's GPU for NCCL (without it NCCL guesses the device from the rank, which can hang when
    rank 0 is not on cuda:0); None for gloo."""
    return device if backend == "nccl" else None


def serve(store, rank: int, boot: Bootstrap) -> None:
    """A worker's life: join the group, then answer rank 0's messages until ``stop``."""
    world = len(boot.devices)
    device = torch.device(boot.devices[rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store.set(READY_KEY.format(rank), b"1")
    dist.init_process_group(boot.backend, store=store, rank=rank, world_size=world,
                            timeout=timedelta(seconds=boot.timeout_s), device_id=_nccl_device(boot.backend, device))
    runtime = RankRuntime(SPComm(rank, world))
    dm = None
    with torch.inference_mode():
        while True:
            kind, payload = _broadcast_object(None, device)
            if kind == "stop":
                break
            if kind == "weights":
                dm = None
                runtime.kv.release()
                dm = build_wan(payload, device)
                for t in dm.state_dict().values():
                    dist.broadcast(t, src=0)
            elif kind == "forward":
                blob, specs = payload
                call = pickle.loads(blob)
                tensors = [_empty_like_spec(s, device) for s in specs]
                _broadcast_tensors(tensors, device)
                sp_wan_forward(dm, *tensors, call, runtime)
    dist.destroy_process_group()


def report_worker_error(store, rank: int) -> None:
    text = traceback.format_exc()
    sys.stderr.write(f"[RTV] sequence-parallel worker rank {rank} failed:\n{text}")
    sys.stderr.flush()
    try:
        store.set(ERROR_KEY.format(rank), text[-4000:].encode())
    except Exception:  # rank 0 is gone: nobody to tell
        pass
