# Copyright (c) mmdyt contributors. All rights reserved.
"""What a budget sweep (:func:`mmdyt.apis.budget.sweep`) looks like: the
printed table, the CSV / JSON / PNG files and a progress bar over its
points. The tools choose matplotlib's backend (e.g. Agg for files);
nothing here does."""
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import matplotlib.pyplot as plt

from mmdyt.utils.progress import ProgressBar

__all__ = [
    'SWEEP_FILES', 'sweep_table', 'flops_unit', 'plot_sweep', 'save_sweep',
    'SweepProgress'
]

#: the files :func:`save_sweep` writes, by kind.
SWEEP_FILES = dict(csv='sweep.csv', json='sweep.json', png='sweep.png')


def sweep_table(summary: dict) -> List[str]:
    """The lines ``rate_sweep.py`` prints for a
    :func:`~mmdyt.apis.budget.sweep` summary: a title, one row per point,
    the dense host and the files (``summary['files']``, as
    :func:`save_sweep` returns them)."""
    key, rp = summary['metric'], "r'"
    lines = [
        f'rate sweep: {summary["config"]} + {summary["checkpoint"]} (rules '
        f'{", ".join(summary["rules"])}, calibrated on '
        f'{summary["calib_samples"]} training samples)',
        f'{"point":<12}{"rule":<10}{rp:>6}{"calib":>8}{"act":>8}{key:>16}'
        f'{"GFLOPs":>10}{"vs dense":>10}{"speedup":>9}{"bound":>7}'
    ]
    tome = any(r.get('tome_r') is not None for r in summary['rows'])
    if tome:  # token merging: its r after the rate
        lines[1] = lines[1].replace(f'{rp:>6}', f'{rp:>6}{"ToMe r":>7}', 1)
    for r in summary['rows']:
        target = '-' if r['rate_target'] is None else f'{r["rate_target"]:g}'
        if tome:
            target += f'{"-" if r.get("tome_r") is None else r["tome_r"]:>7}'
        calib = '-' if r['calib_rate'] is None else f'{r["calib_rate"]:.3f}'
        lines.append(
            f'{r["point"]:<12}{r["rule"] or "-":<10}{target:>6}{calib:>8}'
            f'{r["act_rate"]:>8.3f}{r["metric"]:>16.2f}{r["gflops"]:>10.5f}'
            f'{r["flops_ratio"]:>10.3f}{r["speedup"]:>9.2f}'
            f'{r["flops_bound"]:>7.2f}')
    files = summary.get('files', {})
    lines.append(
        f'dense host: {summary["rows"][0]["dense_gflops"]:.5f} GFLOPs; '
        'speedup = backbone, DyT gathered vs dense twin, median of '
        f'interleaved ratios on {summary["timing"]["inputs"]}; files: '
        f'{files.get("csv")}, {files.get("json")}, {files.get("png")}')
    return lines


def _metric_label(key: str) -> str:
    if key.startswith(('accuracy/', 'acc/')):
        return f'{key} (%)'
    return key


def flops_unit(gflops: float):
    """``(scale, name)`` that shows ``gflops`` with a readable mantissa:
    GFLOPs from 0.1 G up, else MFLOPs (from 0.1 M), else KFLOPs."""
    for scale, name in ((1.0, 'GFLOPs'), (1e3, 'MFLOPs')):
        if gflops * scale >= 0.1:
            return scale, name
    return 1e6, 'KFLOPs'


def plot_sweep(summary: dict, path: str, title: Optional[str] = None) -> str:
    """Metric against FLOPs per sample: the retargeted points (labelled
    with their target rate), the checkpoint's own trained point and the
    dense host's FLOPs. The FLOPs axis is in GFLOPs, or MFLOPs / KFLOPs for
    a model below 0.1 GFLOPs (:func:`flops_unit` of the dense host)."""
    rows: List[dict] = [dict(r) for r in summary['rows']]
    scale, unit = flops_unit(rows[0]['dense_gflops'])
    for r in rows:
        r['gflops'] *= scale
        r['dense_gflops'] *= scale
    trained = [r for r in rows if r['point'] == 'trained']
    # point labels stay readable where they cross a curve or a marker
    label_box = dict(
        boxstyle='round,pad=0.1', fc='white', ec='none', alpha=0.8)
    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=110)
    styles = {'global': ('o-', 'tab:blue'), 'per_layer': ('s--', 'tab:green')}
    tome_rs = sorted(
        {r.get('tome_r')
         for r in rows if r['point'] == 'retargeted'},
        key=lambda v: v or 0)
    curves = [(rule, t) for rule in summary['rules'] for t in tome_rs]
    for k, (rule, tome_r) in enumerate(curves):
        sweep = sorted((r for r in rows if r['point'] == 'retargeted'
                        and r['rule'] == rule and r.get('tome_r') == tome_r),
                       key=lambda r: r['gflops'])
        if not sweep:
            continue
        fmt, color = styles[rule]
        if tome_r:  # token merging (ToMe r > 0): lighter shade, dotted
            color = plt.get_cmap('tab20')(2 * list(styles).index(rule) + 1)
            fmt = fmt[0] + ':'
        ax.plot([r['gflops'] for r in sweep], [r['metric'] for r in sweep],
                fmt,
                color=color,
                label=f'retargeted, {rule} rule' +
                ('' if tome_r is None else f', ToMe r={tome_r}'))
        if k == 0:  # the same rate has the same FLOPs under every rule
            for r in sweep:
                ax.annotate(
                    f"r'={r['rate_target']:g}", (r['gflops'], r['metric']),
                    textcoords='offset points',
                    xytext=(-24, -13),
                    fontsize=7,
                    color=color,
                    bbox=label_box,
                    zorder=5)
    others = sorted((r for r in rows if r['point'] == 'compare'),
                    key=lambda r: r['gflops'])
    if others:  # their act. rates in the legend: no label to collide
        rates = ', '.join(f"{r['act_rate']:.2f}" for r in others)
        ax.plot([r['gflops'] for r in others], [r['metric'] for r in others],
                'D',
                color='tab:orange',
                ms=7,
                zorder=6,
                label=f'other checkpoints as trained (act. rates {rates})')
    for r in trained:
        target = summary.get('trained_target_rate')
        ax.plot(
            r['gflops'],
            r['metric'],
            '*',
            color='tab:red',
            ms=14,
            zorder=6,
            label=f'as trained (r={target:g}; act. rate '
            f"{r['act_rate']:.2f})" if target is not None else 'as trained')
    dense = rows[0]['dense_gflops']
    ax.axvline(
        dense,
        color='0.4',
        ls='--',
        lw=1,
        label=f'dense host: {dense:.4g} {unit}')
    ax.set_xlabel(f'{unit} per sample (test-set mean, counted from the '
                  'masks)')
    ax.set_ylabel(_metric_label(summary['metric']))
    ax.set_title(
        title or 'DyT: one checkpoint, many budgets\n' +
        osp.basename(str(summary.get('config', ''))),
        fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.18)
    ax.legend(
        fontsize=7,
        loc='upper center',
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
        frameon=False,
        title="point labels: target rate r' (speedups: sweep.csv)",
        title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_sweep(summary: dict, out_dir: str,
               columns: Sequence[str]) -> Dict[str, str]:
    """Write a sweep summary to ``out_dir`` as ``sweep.csv`` (one row per
    point, the ``columns``: :data:`~mmdyt.apis.budget.SWEEP_COLUMNS`),
    ``sweep.json`` (the whole summary) and ``sweep.png``
    (:func:`plot_sweep`).

    Returns:
        dict: The paths written, by kind (``csv``, ``json``, ``png``).
    """
    os.makedirs(out_dir, exist_ok=True)
    files = {
        kind: osp.join(out_dir, name)
        for kind, name in SWEEP_FILES.items()
    }
    with open(files['csv'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in summary['rows']:
            writer.writerow({k: row.get(k) for k in columns})
    with open(files['json'], 'w') as f:
        json.dump(summary, f, indent=1)
    plot_sweep(summary, files['png'])
    return files


class SweepProgress:
    """A :class:`~mmdyt.utils.progress.ProgressBar` over the retargeted
    points of :func:`~mmdyt.apis.budget.sweep` (pass it as ``progress``):
    the rule, rate, activation rate and metric of the last point.

    Args:
        rules (sequence of str): The sweep's rules (for the default text).
        desc (str, optional): The bar's text (default:
            ``'rate sweep (<rules>)'``).
    """

    def __init__(self, rules: Sequence[str], desc: Optional[str] = None):
        if isinstance(rules, str):
            rules = [rules]
        self.desc = desc or f'rate sweep ({", ".join(rules)})'
        self.bar: Optional[ProgressBar] = None

    def start(self, total: int) -> None:
        self.bar = ProgressBar(total, self.desc)

    def update(self, row: dict) -> None:
        self.bar.update(
            1,
            rule=row['rule'],
            rate=f"{row['rate_target']:g}",
            act=f"{row['act_rate']:.3f}",
            metric=f"{row['metric']:.2f}")

    def close(self) -> None:
        self.bar.close()
