"""Markdown tables of bench/reference_quality.py's record, ready for the README."""

from __future__ import annotations


def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def attention_tables(attention: dict, named: dict) -> None:
    trained, random = attention["trained"], attention["random_weights"]
    rows = [
        [
            str(t["block"]),
            _f(t["normalized_entropy"]),
            _f(r["normalized_entropy"]),
            _f(t["top1"]),
            _f(r["top1"]),
            _f(t["own_frame_mass"]),
            _f(r["own_frame_mass"]),
        ]
        for t, r in zip(trained["blocks"], random["blocks"])
    ]
    rows.append(["mean", _f(trained["normalized_entropy"]), _f(random["normalized_entropy"]), "", "", "", ""])
    _table(
        f"Attention of real forward passes, grid {trained['grid']} ({trained['tokens']} tokens, "
        f"log N = {trained['log_n']:.2f}); entropy / log N (1 = uniform), trained vs random weights",
        [
            "block",
            "H / log N",
            "random: H / log N",
            "top-1 prob.",
            "random: top-1",
            "own-frame mass",
            "random: own-frame",
        ],
        rows,
    )
    by_label = {row["label"]: row for row in trained["monarch"]}
    random_by_label = {row["label"]: row for row in random["monarch"]}
    rows = []
    for name, setting in named.items():
        row, contrast = by_label.get(setting.label()), random_by_label.get(setting.label())
        if row is None:
            continue
        rows.append(
            [
                name,
                _pct(row["density"]),
                _f(row["rel_l2"]),
                _f(row["cosine"]),
                _f(row["median_token_rel"]),
                _f(contrast["rel_l2"]),
            ]
        )
    _table(
        "Monarch vs exact attention on the captured q, k, v (mean over blocks, clips, sigmas, heads)",
        ["setting", "density", "rel. L2", "cosine", "median token rel. error", "random weights: rel. L2"],
        rows,
    )


def _class_check(rec: dict) -> list[str]:
    """Colour and motion right (the class check), outline right too (the full check)."""
    return [_pct(rec.get("colour_and_motion_rate")), _pct(rec["rate"])]


def video_tables(videos: dict, named: dict) -> None:
    names = {s.label(): n for n, s in named.items()}
    rows = [["dense", "0", "-", "0", *_class_check(videos["dense"]["recognisability"])]]
    rows += [
        [
            names.get(r["label"], r["label"]),
            _f(r["video_rel_l2"]),
            _f(r["video_psnr_db"], 1),
            _f(r["latent_rel_l2"]),
            *_class_check(r["recognisability"]),
        ]
        for r in videos["monarch"]
    ]
    _table(
        f"Sampled videos ({len(videos['jobs'])} per setting, {videos['sampler']}, {videos['steps']} steps, "
        f"cfg {videos['cfg']}), same seeds as dense",
        ["attention", "video rel. L2 vs dense", "PSNR vs dense (dB)", "latent rel. L2",
         "colour + motion right", "also outline right"],
        rows,
    )


def stream_table(stream: dict) -> None:
    rows = []
    for name, s in stream["summary"].items():
        rows.append(
            [
                name,
                _f(s["seam_warp_error_ratio_max"], 2),
                _f(s["seam_motion_change_px_ratio_max"], 2),
                _f(s["seam_flicker_ratio_max"], 2),
                _f(s["mawe"]),
                _f(s["last_chunk_lab_shift"], 2),
                _pct(s["recognisable_rate"]),
                _pct(s["window_pass_rate"]),
            ]
        )
    _table(
        f"Streaming sampler: {stream['total_frames']} frames in {stream['chunks']} chunks of "
        f"{stream['chunk_frames']}, overlap {stream['overlap_frames']} (mean over videos; seam ratios: worst "
        "seam / inside the chunks)",
        [
            "video",
            "seam warp error ratio",
            "seam motion-change ratio",
            "seam flicker ratio",
            "MAWE",
            "last chunk Lab shift",
            "recognisable (whole)",
            "recognisable (chunk windows)",
        ],
        rows,
    )


def interpolation_table(interp: dict) -> None:
    model, data = interp["model_samples"], interp["procedural_clips"]
    frames = sum(v["rebuilt_frames"] for v in model["videos"])
    _table(
        f"Interpolation: every other frame dropped and rebuilt at t = 0.5 ({frames} frames); PSNR vs the "
        "dropped frames (dB)",
        ["method", "model's own samples", "procedural clips of the same prompts (reference)"],
        [
            ["flow interpolation", _f(model["flow_psnr_db"], 2), _f(data["flow_psnr_db"], 2)],
            ["plain blend", _f(model["blend_psnr_db"], 2), _f(data["blend_psnr_db"], 2)],
        ],
    )


def print_report(record: dict, named: dict) -> None:
    attention_tables(record["attention"], named)
    video_tables(record["sampled_videos"], named)
    stream_table(record["streaming"])
    interpolation_table(record["interpolation"])
