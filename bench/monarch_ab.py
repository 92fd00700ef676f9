"""A stage-1 kernel change against its baseline, alternating in one process (A, B, A, B).

Kernel changes move Monarch's time by a few percent, less than the spread between processes
(autotuning choices, clocks), so a change is measured against the kernel it replaces in the same
process: the baseline stage-1 module (``triton_stage1.py`` of another revision, e.g.
``git show HEAD~1:kernels/monarch/triton_stage1.py > /tmp/base_stage1.py``) is loaded into the
package under another name, and each variant keeps its own tuned choices and launch plans. A
variant is offered only the candidates its kernel takes; ``--baseline-without KEY`` instead keeps
the current kernel and takes the candidates that set ``KEY`` away from the baseline; ``--baseline-rev REV``
loads the whole ``kernels/monarch`` package of git revision ``REV`` beside the current one (for changes
that span kernels and launcher), each with its own tuned choices. Prints a table, writes JSON (device,
versions, times, chosen stage-1 configs, relative L2 between the outputs).

    python bench/monarch_ab.py --baseline /tmp/base_stage1.py --shapes full_480p,full_720p --out /tmp/ab.json
    python bench/monarch_ab.py --baseline-without BF16_PRODUCTS --out /tmp/ab.json
    python bench/monarch_ab.py --baseline-rev HEAD~3 --settings plain,iterations2 --out /tmp/ab.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import DTYPE, HEAD_DIM, SHAPES, timed, versions  # noqa: E402

import rtv.kernels.monarch as monarch  # noqa: E402
from rtv.kernels.monarch import autotune_cache, monarch_attention  # noqa: E402
from rtv.kernels.monarch import triton_monarch as tm  # noqa: E402

SETTINGS = {"plain": {}, "node_default": {"exact_local": 1}, "iterations2": {"iterations": 2}}


def load_baseline(path: Path):
    """The baseline module inside the package (its relative imports resolve), as ``_ab_baseline_stage1``."""
    name = f"{monarch.__name__}._ab_baseline_stage1"
    target = Path(monarch.__file__).parent / "_ab_baseline_stage1.py"
    shutil.copyfile(path, target)
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # Triton reads the jit functions' source while decorating them
    finally:
        target.unlink()
    return module


def load_baseline_package(rev: str, where: Path):
    """``kernels/monarch`` of git revision ``rev`` as package ``_ab_monarch_baseline`` (its own tuned
    choices and launch plans; the custom op is registered once per process and not used: eager calls
    run the implementation directly)."""
    package = where / "_ab_monarch_baseline"
    package.mkdir(parents=True)
    if Path(rev).is_dir():  # a copy of the package (machines whose checkout carries no git history)
        for path in Path(rev).glob("*.py"):
            shutil.copyfile(path, package / path.name)
    else:
        repo = Path(__file__).resolve().parents[1]
        files = subprocess.run(["git", "ls-tree", "--name-only", rev, "kernels/monarch/"], cwd=repo, check=True,
                               capture_output=True, text=True).stdout.split()  # fmt: skip
        for name in files:
            if name.endswith(".py"):
                source = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=repo, check=True,
                                        capture_output=True).stdout  # fmt: skip
                (package / Path(name).name).write_bytes(source)  # kept: Triton reads its kernels' source
    spec = importlib.util.spec_from_file_location(package.name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    sys.modules[package.name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{package.name}.triton_monarch")


LAUNCH_OPTIONS = {"num_warps", "num_stages", "maxnreg"}
CURRENT_CANDIDATES = tm.stage1_candidates


def candidates_for(kernel, without: str | None = None):
    """The current candidates less those that set a block size ``kernel`` lacks (or ``without``); other
    implementations' candidates (``impl``, e.g. the Gluon kernel) are not the Triton kernel's to judge."""

    def candidates(b2: int, bf16_products: int = 0, gluon: bool = False) -> list[dict]:
        takes = set(kernel.arg_names) | LAUNCH_OPTIONS
        return [c for c in CURRENT_CANDIDATES(b2, bf16_products, gluon)
                if ("impl" in c or set(c) <= takes) and without not in c]  # fmt: skip

    return candidates


class Variant:
    """One stage-1 kernel and its candidates, with its own tuned choices, launch plans and autotune file."""

    def __init__(self, name: str, kernel, candidates, cache_dir: Path, package=None) -> None:
        self.name, self.kernel, self.candidates, self.cache_dir = name, kernel, candidates, cache_dir
        self.chosen: dict = {}
        self.recipes: dict = {}
        self.package = package  # another revision's triton_monarch: called as it is, nothing patched

    def call(self, q, k, v, grid, settings: dict):
        if self.package is None:
            return monarch_attention(q, k, v, grid, backend="triton", **settings)
        tiling = {key: settings[key] for key in ("tile_frames", "h_split", "w_split") if key in settings}
        rest = {key: value for key, value in settings.items() if key not in tiling}
        layout = self.package.monarch_layout(grid, q.shape[-2], k.shape[-2], **tiling)
        return self.package.run(q, k, v, layout, **rest)

    def __enter__(self):
        if self.package is None:
            tm.monarch_stage1_kernel, tm.stage1_candidates = self.kernel, self.candidates
            tm._chosen, tm._recipes = self.chosen, self.recipes
        # the autotune file follows RTV_CACHE_DIR (autotune_cache.shared_cache re-opens on a change)
        self._saved_cache_dir = os.environ.get(autotune_cache.CACHE_DIR_ENV)
        os.environ[autotune_cache.CACHE_DIR_ENV] = str(self.cache_dir)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved_cache_dir is None:
            os.environ.pop(autotune_cache.CACHE_DIR_ENV, None)
        else:
            os.environ[autotune_cache.CACHE_DIR_ENV] = self._saved_cache_dir


def bench_shape(key: str, variants: list[Variant], settings: list[str], repeats: int) -> dict:
    shape = SHAPES[key]
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
        for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
    )
    rows: dict = {}
    for setting in settings:

        entry, outputs = rows.setdefault(setting, {}), {}
        for repeat in range(repeats):
            for variant in variants:

                def call(s=SETTINGS[setting], variant=variant):
                    return variant.call(q, k, v, shape.grid, s)

                with variant:
                    ms = timed(call)
                    outputs[variant.name] = call().float()
                entry.setdefault(variant.name, []).append(ms)
                print(f"{key:11s} {setting:13s} {variant.name:9s} {repeat:3d} {ms:9.3f}", flush=True)
        a, b = outputs["baseline"], outputs["change"]
        entry["relative_l2_change_vs_baseline"] = ((a - b).norm() / a.norm()).item()
        ratios = sorted(x / y for x, y in zip(entry["baseline"], entry["change"]))
        entry["median_ratio_baseline_over_change"] = ratios[len(ratios) // 2]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    baseline_from = parser.add_mutually_exclusive_group(required=True)
    baseline_from.add_argument("--baseline", type=Path, help="triton_stage1.py of the baseline revision")
    baseline_from.add_argument("--baseline-without", metavar="KEY", help="current kernel, candidates without KEY")
    baseline_from.add_argument("--baseline-rev", metavar="REV",
                               help="kernels/monarch of this git revision (or a folder holding a copy), whole")
    parser.add_argument("--shapes", default="full_480p,chunk_last,full_720p")
    parser.add_argument("--settings", default="plain,node_default", help=f"subset of {list(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed-cache", type=Path, help="autotune file both variants start from (skips re-tuning)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    current = tm.monarch_stage1_kernel
    base_kernel = load_baseline(args.baseline).monarch_stage1_kernel if args.baseline else current
    tmp = Path(tempfile.mkdtemp(prefix="monarch-ab-"))
    package = load_baseline_package(args.baseline_rev, tmp / "packages") if args.baseline_rev else None
    for name in ("baseline", "change") if args.seed_cache else ():
        (tmp / name).mkdir()
        shutil.copyfile(args.seed_cache, tmp / name / args.seed_cache.name)
    variants = [
        Variant("baseline", base_kernel, candidates_for(base_kernel, args.baseline_without), tmp / "baseline",
                package),  # fmt: skip
        Variant("change", current, candidates_for(current), tmp / "change"),
    ]
    baseline = (
        f"kernels/monarch at {args.baseline_rev}" if args.baseline_rev
        else str(args.baseline) if args.baseline
        else f"current kernel, candidates without {args.baseline_without}"
    )  # fmt: skip
    result = {"versions": versions(), "dtype": str(DTYPE), "head_dim": HEAD_DIM, "baseline": baseline,
              "shapes": {}}  # fmt: skip
    print(f"{'shape':11s} {'setting':13s} {'variant':9s} {'run':>3s} {'ms':>9s}")
    for key in args.shapes.split(","):
        result["shapes"][key] = bench_shape(key, variants, args.settings.split(","), args.repeats)
        torch.cuda.empty_cache()
    result["chosen_stage1"] = {
        v.name: {key: config for key, config in (v.package._chosen if v.package else v.chosen).items()
                 if "|stage1|" in key or "|refine|" in key}
        for v in variants
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: {s: e["median_ratio_baseline_over_change"] for s, e in r.items()} for k, r in
                      result["shapes"].items()}))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
