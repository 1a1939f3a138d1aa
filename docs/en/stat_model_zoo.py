# Copyright (c) mmdyt contributors. All rights reserved.
"""Write the model zoo page from model-index.yml and the metafiles."""
import os.path as osp

import yaml


def _g(flops):
    return f'{flops / 1e9:.2f}'


def _m(params):
    return f'{params / 1e6:.2f}'


def write_model_zoo(repo, out):
    """Write ``out`` (markdown): one table per metafile of ``repo``.

    Args:
        repo (str): Repository root (holds ``model-index.yml``).
        out (str): Path of the page to write.

    Returns:
        int: Number of models listed.
    """
    with open(osp.join(repo, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    lines = [
        '# Model zoo', '',
        'Generated from `model-index.yml` and the metafiles at every docs '
        'build (`mim search mmdyt` lists the same models). Accuracy and '
        'GFLOPs marked *paper* are the numbers the paper reports; no weights '
        'are released by this project. The other columns are this '
        "project's static counts for one sample at the config's test input "
        '(`tools/analysis_tools/get_flops.py`): the dense host model, all '
        'parameters, and the adapter parameters (the paper\'s "Params").', ''
    ]
    count = 0
    for meta_path in index['Import']:
        with open(osp.join(repo, meta_path)) as f:
            meta = yaml.safe_load(f)
        for coll in meta['Collections']:
            readme = coll['README']
            lines += [f'## {coll["Name"]}', '',
                      f'Family README: `{readme}`. Paper: '
                      f'[{coll["Paper"]["Title"]}]({coll["Paper"]["URL"]}).',
                      '',
                      '| model | data | metric (paper) | GFLOPs (paper) | '
                      'dense GFLOPs | params (M) | adapter params (M) |',
                      '|---|---|---|---|---|---|---|']
            for model in meta['Models']:
                if model['In Collection'] != coll['Name']:
                    continue
                md = model['Metadata']
                metrics = ((model.get('Results') or [{}])[0]).get(
                    'Metrics', {})
                metric = next(
                    (f'{k.replace(" (paper)", "")}: {v}'
                     for k, v in metrics.items() if 'GFLOPs' not in k), '-')
                paper_flops = metrics.get('GFLOPs (paper)', '-')
                lines.append(
                    f'| `{model["Name"]}` | {md["Training Data"]} | {metric} '
                    f'| {paper_flops} | {_g(md["FLOPs"])} | '
                    f'{_m(md["Parameters"])} | '
                    f'{_m(md["Adapter Parameters"])} |')
                count += 1
            lines.append('')
    with open(out, 'w') as f:
        f.write('\n'.join(lines))
    return count
