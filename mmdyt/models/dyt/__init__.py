# Copyright (c) mmdyt contributors. All rights reserved.
"""Task-agnostic DyT core: pure torch, imports no host codebase."""
from .adapter import Adapter, MoEAdapter, build_adapter
from .algorithm import DyTAlgorithmMixin, check_dyt_loss_weights
from .config import (DYT_DEFAULTS, DyTConfig, check_max_rate, check_variant,
                     parse_dyt_cfg)
from .dispatcher import TokenDispatcher
from .flops import (LayerFlopsSpec, SwinFlopsSpec, ViTFlopsSpec, base_flops,
                    dynamic_flops, layer_flops, linear_module_flops,
                    model_flops)
from .layer import (MODES, VARIANT_SITES, DyTLayer, HostLayerOps, PackedTokens,
                    check_mode)
from .losses import activation_rate, distill_loss, rate_loss
from .masks import masks_rates, site_masks, stack_masks, stack_site_masks
from .mixin import DyTBackboneMixin
from .naming import (ADAPTERS, DISPATCHERS, DYT_LAYERS, DYT_PREFIX,
                     dispatcher_state, dyt_state, host_state, is_adapter_name,
                     is_dispatcher_name, is_dyt_param_name)
from .stats import (DENSE_FLOPS_FIELD, FLOPS_FIELD, RATES_FIELD, VIEWS_FIELD,
                    DyTStats)

__all__ = [
    'Adapter', 'MoEAdapter', 'build_adapter', 'TokenDispatcher', 'DyTLayer',
    'HostLayerOps', 'PackedTokens', 'MODES', 'VARIANT_SITES', 'check_mode',
    'check_variant', 'stack_masks', 'site_masks', 'stack_site_masks',
    'masks_rates', 'ViTFlopsSpec', 'SwinFlopsSpec', 'LayerFlopsSpec',
    'base_flops', 'dynamic_flops', 'layer_flops', 'model_flops',
    'activation_rate', 'distill_loss', 'rate_loss', 'DYT_DEFAULTS',
    'DyTBackboneMixin', 'parse_dyt_cfg', 'DyTAlgorithmMixin',
    'check_dyt_loss_weights', 'linear_module_flops', 'DyTStats', 'FLOPS_FIELD',
    'RATES_FIELD', 'VIEWS_FIELD', 'DENSE_FLOPS_FIELD', 'DyTConfig',
    'check_max_rate', 'DYT_LAYERS', 'DYT_PREFIX', 'DISPATCHERS', 'ADAPTERS',
    'is_dyt_param_name', 'is_dispatcher_name', 'is_adapter_name', 'dyt_state',
    'host_state', 'dispatcher_state'
]
