# Copyright (c) mmdyt contributors. All rights reserved.
"""Checks that an exported graph really skips tokens.

:func:`check_skipping_graph` finds, for every dispatched block, the first
matrix product of its MLP (by the host weights' values, so it does not rely
on node names), and proves two things:

- structurally, the product's input comes from a ``Gather`` whose indices
  are computed by ``NonZero`` (``gather`` mode) or ``TopK`` (``topk``
  mode) of the dispatcher's mask, i.e. the MLP runs on gathered rows;
- at run time (ONNX Runtime on a given input), that input has as many rows
  as the PyTorch model's active tokens there, fewer than the block's
  ``B x N`` tokens.
"""
from collections import Counter
from typing import Dict, List, Optional

import numpy as np
import torch.nn as nn

#: ops that select the active tokens' indices.
INDEX_OPS = ('NonZero', 'TopK')
#: ops that put the MLP's rows back into the full token tensor.
SCATTER_OPS = ('ScatterND', 'ScatterElements')


def graph_summary(path: str) -> Dict[str, int]:
    """Node count of every op type of the ONNX file at ``path``."""
    from .runtime import require_onnx
    onnx, _ = require_onnx()
    model = onnx.load(path)
    return dict(Counter(n.op_type for n in model.graph.node))


def first_mlp_linears(backbone: nn.Module) -> List[nn.Linear]:
    """The first ``Linear`` of every host layer's MLP (``ffn`` or
    ``mlp``), in layer order."""
    linears = []
    for op in backbone._host_ops:
        host = getattr(op, 'layer', None) or getattr(op, 'block')
        mlp = getattr(host, 'ffn', None) or getattr(host, 'mlp')
        linears.append(
            next(m for m in mlp.modules() if isinstance(m, nn.Linear)))
    return linears


def _ancestors(name: str, producers: dict, limit: int = 400) -> set:
    """Op types of every node upstream of tensor ``name``."""
    seen, types, stack = set(), set(), [name]
    while stack and len(seen) < limit:
        t = stack.pop()
        node = producers.get(t)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        types.add(node.op_type)
        stack.extend(node.input)
    return types


def _find_weight_consumers(graph, weight: np.ndarray, numpy_helper) -> list:
    """Gemm / MatMul nodes whose weight input holds ``weight`` (``(F, C)``
    as in ``nn.Linear``, or its transpose)."""
    names = set()
    for init in graph.initializer:
        dims = tuple(init.dims)
        if dims not in (weight.shape, weight.shape[::-1]):
            continue
        value = numpy_helper.to_array(init)
        if value.shape != weight.shape:
            value = value.T
        if np.allclose(value, weight, atol=1e-6):
            names.add(init.name)
    return [
        n for n in graph.node
        if n.op_type in ('Gemm',
                         'MatMul') and len(n.input) > 1 and n.input[1] in names
    ]


def check_skipping_graph(path: str,
                         model: nn.Module,
                         inputs,
                         mode: str = 'gather',
                         rate: Optional[float] = None) -> List[dict]:
    """Prove that every dispatched MLP of the exported ``path`` runs on the
    gathered active tokens only.

    Args:
        path (str): The exported file.
        model (nn.Module): The exported algorithm (same weights).
        inputs (Tensor): An input of the deploy module; its active-token
            counts come from the PyTorch model in the same mode.
        mode (str): The export mode.
        rate (float, optional): ``R`` of a ``topk`` export.

    Returns:
        list[dict]: Per dispatched layer: ``layer``, ``index_op`` (the op
        that chose the rows), ``rows`` (rows of the MLP input in ORT),
        ``active`` (active tokens in PyTorch) and ``tokens`` (``B x N``).

    Raises:
        AssertionError: If a dispatched MLP has no gathered input, or runs
            on another number of rows than the active tokens.
    """
    import onnx
    from onnx import helper, numpy_helper

    from .export import pytorch_output
    from .runtime import ort_session
    backbone = model.backbone
    proto = onnx.load(path)
    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    types = {n.op_type for n in graph.node}
    missing = [
        op for op in (INDEX_OPS[0] if mode == 'gather' else INDEX_OPS[1], )
        if op not in types
    ]
    if missing or not types & set(SCATTER_OPS):
        raise AssertionError(f'{path}: the graph has no {missing or ""} '
                             f'{"" if types & set(SCATTER_OPS) else "Scatter"}'
                             ' node; it cannot skip tokens')
    # PyTorch's active-token counts, per layer
    pytorch_output(model, inputs, mode, rate, keep_masks=True)
    masks = backbone.dyt_masks
    probes, report = [], []
    for i, (linear,
            used) in enumerate(zip(first_mlp_linears(backbone), masks)):
        if 'mlp' not in used:
            continue
        weight = linear.weight.detach().cpu().numpy()
        nodes = _find_weight_consumers(graph, weight, numpy_helper)
        if len(nodes) != 1:
            raise AssertionError(f'layer {i}: expected one product with its '
                                 f'MLP weight in {path}, found {len(nodes)}')
        data = nodes[0].input[0]
        upstream = _ancestors(data, producers)
        index_ops = [op for op in INDEX_OPS if op in upstream]
        if 'Gather' not in upstream or not index_ops:
            raise AssertionError(
                f'layer {i}: the MLP input of {path} is not gathered '
                f'(no Gather / {"/".join(INDEX_OPS)} upstream)')
        mask = used['mlp']
        report.append(
            dict(
                layer=i,
                index_op=index_ops[0],
                active=int(mask.sum()),
                tokens=int(mask.numel())))
        probes.append(data)
    # run with the MLP inputs exposed as outputs
    known = {o.name for o in graph.output}
    for name in probes:
        if name not in known:
            graph.output.append(helper.make_empty_tensor_value_info(name))
    probed = path[:-5] + '.probe.onnx' if path.endswith('.onnx') else \
        path + '.probe'
    onnx.save(proto, probed)
    try:
        session = ort_session(probed, threads=1)
        names = [o.name for o in session.get_outputs()]
        x = inputs.detach().cpu().numpy().astype(np.float32)
        outs = dict(
            zip(names, session.run(None, {session.get_inputs()[0].name: x})))
    finally:
        import os
        os.remove(probed)
    for entry, name in zip(report, probes):
        value = outs[name]
        rows = int(np.prod(value.shape[:-1]))
        entry['rows'] = rows
        if rows != entry['active']:
            raise AssertionError(
                f'layer {entry["layer"]}: the MLP ran on {rows} rows in ORT, '
                f'{entry["active"]} tokens were active in PyTorch out of '
                f'{entry["tokens"]}')
    return report
