# Copyright (c) mmdyt contributors. All rights reserved.
"""Deploy DyT models with their token skipping: ONNX export (``gather`` and
``topk`` modes), ONNX Runtime inference, graph checks.

``onnx`` and ``onnxruntime`` (``requirements/deploy.txt``) are imported only
when a function needs them: ``import mmdyt`` and ``import mmdyt.deploy`` work
without them, and the entry points raise one :class:`ImportError` that says
what to install (:func:`require_onnx`).
"""
from .export import (EXPORT_MODES, EXPORT_VARIANTS, EXPORTERS, DeployError,
                     build_deploy_module, default_topk_rate, example_input,
                     export_checkpoint, export_onnx, load_model, measured_rate,
                     model_task, prepare_for_export, pytorch_output,
                     verify_onnx)
from .graph import check_skipping_graph, graph_summary
from .runtime import OnnxPredictor, ort_session, require_onnx, run_session

__all__ = [
    'EXPORT_MODES', 'EXPORT_VARIANTS', 'EXPORTERS', 'DeployError',
    'build_deploy_module', 'default_topk_rate', 'example_input',
    'export_checkpoint', 'export_onnx', 'load_model', 'measured_rate',
    'model_task', 'prepare_for_export', 'pytorch_output', 'verify_onnx',
    'check_skipping_graph', 'graph_summary', 'OnnxPredictor', 'ort_session',
    'require_onnx', 'run_session'
]
