# Copyright (c) mmdyt contributors. All rights reserved.
"""ONNX Runtime: sessions, and a predictor with the config's preprocessing."""
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np

INSTALL_HINT = ('pip install onnx onnxruntime (or: pip install -r '
                'requirements/deploy.txt)')


def require_onnx():
    """Import ``onnx`` and ``onnxruntime``.

    Returns:
        tuple: The two modules.

    Raises:
        ImportError: If either is missing, saying what to install.
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(f'mmdyt.deploy needs onnx and onnxruntime '
                          f'({e}); {INSTALL_HINT}') from e
    return onnx, onnxruntime


def ort_session(path: str,
                threads: Optional[int] = None,
                providers: Optional[Sequence[str]] = None):
    """An ``onnxruntime.InferenceSession`` of ``path``.

    Args:
        path (str): The ``.onnx`` file.
        threads (int, optional): Intra-op threads (None: ORT's default, all
            cores). Inter-op threads are 1 (sequential execution).
        providers (list[str], optional): Defaults to CPU.
    """
    _, ort = require_onnx()
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX file not found: {path}')
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        path, opts, providers=list(providers or ['CPUExecutionProvider']))


def run_session(session, inputs) -> np.ndarray:
    """Run a one-input, one-output session on ``inputs`` (array or
    tensor)."""
    if hasattr(inputs, 'detach'):
        inputs = inputs.detach().cpu().numpy()
    name = session.get_inputs()[0].name
    return session.run(
        None, {name: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


class OnnxPredictor:
    """Serve an exported DyT model with ONNX Runtime and the config's
    preprocessing.

    The graph takes normalised tensors (see the deploy guide); this class
    runs the config's test pipeline on files (or arrays), normalises as the
    config's ``data_preprocessor`` does, runs the session and decodes:

    - classification: ``dict(pred_label, pred_score, scores)`` per image;
    - video (per frame): ``dict(pred_label, pred_score, scores)`` per video,
      scores averaged over its views (``average_clips='score'``);
    - segmentation: ``dict(pred_sem_seg)`` (an ``(H, W)`` int64 map at the
      pipeline's image size) per image.

    Args:
        config (str | Config): The model's config.
        onnx_file (str): The exported file.
        threads (int, optional): ORT intra-op threads.
    """

    def __init__(self, config, onnx_file: str, threads: Optional[int] = None):
        from mmdyt.apis.model import load_config
        self.cfg = load_config(config) if isinstance(config, str) else config
        self.session = ort_session(onnx_file, threads)
        model = self.cfg.model
        if 'decode_head' in model:
            self.task = 'seg'
        elif 'cls_head' in model:
            self.task = 'video'
        else:
            self.task = 'cls'
        pre = dict(self.cfg.get('data_preprocessor') or {})
        pre.update(model.get('data_preprocessor') or {})
        self.mean = pre.get('mean')
        self.std = pre.get('std')
        self.to_rgb = bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False)))
        self._pipeline = None

    # ------------------------------------------------------------ pipeline
    def _test_pipeline(self):
        if self._pipeline is None:
            from mmengine.dataset import Compose
            from mmengine.registry import init_default_scope
            init_default_scope(self.cfg.get('default_scope', 'mmpretrain'))
            pipeline = self.cfg.get('test_pipeline')
            if pipeline is None:
                pipeline = self.cfg.test_dataloader.dataset.pipeline
            self._pipeline = Compose(list(pipeline))
        return self._pipeline

    def _sample(self, item) -> dict:
        if isinstance(item, np.ndarray):
            data = dict(
                img=item, img_shape=item.shape[:2], ori_shape=item.shape[:2])
            pipeline = [
                t for t in self._test_pipeline().transforms
                if 'LoadImage' not in type(t).__name__
            ]
            for t in pipeline:
                data = t(data)
            return data
        if self.task == 'video':  # what mmaction2's VideoDataset adds
            data = dict(filename=item, start_index=0, modality='RGB')
        else:
            data = dict(img_path=item)
        for t in self._test_pipeline().transforms:
            if type(t).__name__ != 'LoadAnnotations':  # no labels to serve
                data = t(data)
        return data

    def normalise(self, inputs: np.ndarray) -> np.ndarray:
        """``(..., C, H, W)`` uint8/float pixels -> the graph's input."""
        x = np.asarray(inputs, dtype=np.float32)
        channel_axis = x.ndim - 3 if self.task != 'video' else x.ndim - 4
        if self.to_rgb:
            x = np.flip(x, axis=channel_axis)
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        if self.mean is not None:
            x = x - np.asarray(self.mean, np.float32).reshape(shape)
        if self.std is not None:
            x = x / np.asarray(self.std, np.float32).reshape(shape)
        return np.ascontiguousarray(x)

    def preprocess(self, item) -> np.ndarray:
        """One file (or HWC array) -> the graph's input rows: ``(1, C, H,
        W)`` for an image, ``(V, C, T, H, W)`` for the views of a video."""
        packed = self._sample(item)['inputs']
        x = packed.numpy() if hasattr(packed, 'numpy') else np.asarray(packed)
        if self.task == 'video':
            return self.normalise(x)  # (V, C, T, H, W)
        x = self.normalise(x[None])
        if self.task == 'seg':  # pad (after normalising, with 0) as mmseg
            H, W = self.session.get_inputs()[0].shape[2:]
            h, w = x.shape[2:]
            if not (isinstance(H, int) and isinstance(W, int)) or h > H \
                    or w > W:
                raise ValueError(
                    f'the image is {h}x{w} after the test pipeline, the graph '
                    f'takes {H}x{W}: export at that size (--shape) or cut '
                    'crops of the graph\'s size (sliding windows)')
            x = np.pad(x, ((0, 0), (0, 0), (0, H - h), (0, W - w)))
            self._last_hw = (h, w)
        return x

    # ------------------------------------------------------------- predict
    def __call__(self, items: Union[str, np.ndarray, Sequence]) -> List[dict]:
        """Predict one or several inputs (files or arrays)."""
        if isinstance(items, (str, np.ndarray)):
            items = [items]
        rows, sizes_hw = [], []
        for item in items:
            rows.append(self.preprocess(item))
            sizes_hw.append(getattr(self, '_last_hw', None))
        sizes = [len(r) for r in rows]
        if len({r.shape[1:] for r in rows}) == 1:
            out = run_session(self.session, np.concatenate(rows))
        else:
            out = np.concatenate([run_session(self.session, r) for r in rows])
        results, start = [], 0
        for size, hw in zip(sizes, sizes_hw):
            part = out[start:start + size]
            start += size
            results.append(self.decode(part, hw))
        return results

    def decode(self, logits: np.ndarray, hw=None) -> dict:
        """Outputs of one input's rows -> its prediction (``hw``: the
        image size before padding, segmentation)."""
        if self.task == 'seg':
            h, w = hw or logits.shape[2:]
            return dict(pred_sem_seg=logits[0, :, :h, :w].argmax(0))
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        scores = (exp / exp.sum(-1, keepdims=True)).mean(0)
        return dict(
            pred_label=int(scores.argmax()),
            pred_score=float(scores.max()),
            scores=scores)
