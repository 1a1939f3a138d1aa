# Copyright (c) mmdyt contributors. All rights reserved.
"""The ``dyt=`` options of every DyT backbone, in one place.

:class:`DyTConfig` holds their defaults (the paper's), their documentation
and their validation; the backbones, :class:`~mmdyt.models.dyt.DyTLayer`,
the dispatcher, the adapters and the FLOPs specs take their defaults from
it, and the checks here are the ones every part raises.
"""
from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Tuple, Union

#: dispatch variant -> dispatched sites, in execution order.
VARIANT_SITES: Dict[str, Tuple[str, ...]] = {
    'mlp': ('mlp', ),
    'attn': ('attn', ),
    'attn_mlp': ('attn', 'mlp'),
    'layer': ('layer', ),
}


def check_variant(variant: str) -> str:
    """``variant`` if it is one of :data:`VARIANT_SITES`.

    Raises:
        ValueError: Naming ``dyt.variant`` and the allowed values.
    """
    if variant not in VARIANT_SITES:
        raise ValueError(f'dyt.variant must be one of {list(VARIANT_SITES)}, '
                         f'got {variant!r}')
    return variant


def check_tau(tau: float) -> float:
    """``tau`` if > 0, else a ``ValueError`` naming ``dyt.tau``."""
    if tau <= 0:
        raise ValueError(f'dyt.tau must be > 0, got {tau}')
    return tau


def check_threshold(threshold: float) -> float:
    """``threshold`` if in (0, 1), else a ``ValueError`` naming
    ``dyt.threshold``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f'dyt.threshold must be in (0, 1), got {threshold}')
    return threshold


def check_max_rate(max_rate: Optional[float], key: str) -> Optional[float]:
    """``None`` or a float in (0, 1]; the error names ``key``."""
    if max_rate is None:
        return None
    if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) \
            or not 0.0 < max_rate <= 1.0:
        raise ValueError(f'{key} must be None (no cap) or a float in (0, 1], '
                         f'got {max_rate!r}')
    return float(max_rate)


def check_num_experts(num_experts: int) -> int:
    """``num_experts`` if >= 1, else a ``ValueError`` naming
    ``dyt.num_experts``."""
    if num_experts < 1:
        raise ValueError(f'dyt.num_experts must be >= 1, got {num_experts}')
    return num_experts


def check_bottleneck(bottleneck: int) -> int:
    """``bottleneck`` if >= 1, else a ``ValueError`` naming
    ``dyt.bottleneck``."""
    if bottleneck < 1:
        raise ValueError(f'dyt.bottleneck must be >= 1, got {bottleneck}')
    return bottleneck


@dataclass(frozen=True)
class DyTConfig:
    """The ``dyt=`` options of a DyT backbone.

    Every DyT backbone (``mmdyt.DyTVisionTransformer``,
    ``DyTSegVisionTransformer``, ``DyTVideoMAEViT``, ``DyTSwinTransformer``)
    takes ``dyt=dict(...)`` with these keys, or a :class:`DyTConfig`; a key
    left out takes the default below (the paper's settings). The values are
    checked when the config is built, with errors that name the key and the
    allowed values.

    Example:
        >>> backbone = dict(type='mmdyt.DyTVisionTransformer', arch='b',
        ...                 dyt=dict(variant='attn_mlp', bottleneck=8))
        >>> DyTConfig.from_dict(dict(bottleneck=8)).tau
        5.0
    """
    variant: str = 'mlp'
    """Dispatch variant: ``'mlp'`` (paper default: the dispatcher gates the
    MLP), ``'attn'``, ``'attn_mlp'`` (two dispatchers and two adapters) or
    ``'layer'`` (one dispatcher for the whole layer)."""
    bottleneck: int = 64
    """Adapter width ``d`` (>= 1)."""
    adapter_scale: float = 1.0
    """Adapter output scale ``s``."""
    adapter_dropout: float = 0.1
    """Dropout on the adapter's bottleneck activation."""
    num_experts: int = 1
    """Adapter experts: 1 for a plain adapter, > 1 for a MoE adapter
    (per-sample merged experts, the inference cost of one adapter)."""
    tau: float = 5.0
    """Gumbel-sigmoid temperature of the dispatchers in training (> 0)."""
    threshold: float = 0.5
    """Activation probability above which a token is active, in (0, 1)."""
    max_rate: Optional[float] = None
    """Per-sample cap of the active fraction at inference, in (0, 1]; when
    set it overrides the cap a checkpoint holds. ``None``: the checkpoint's
    cap (none unless it was retargeted)."""

    def __post_init__(self):
        # the order in which the parts used to check them
        check_variant(self.variant)
        check_tau(self.tau)
        check_threshold(self.threshold)
        check_max_rate(self.max_rate, 'dyt.max_rate')
        check_num_experts(self.num_experts)
        check_bottleneck(self.bottleneck)

    @classmethod
    def keys(cls) -> Tuple[str, ...]:
        """The allowed keys of ``dyt=dict(...)``, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, dyt: Union[None, dict, 'DyTConfig']) -> 'DyTConfig':
        """The config of a ``dyt=`` argument.

        Args:
            dyt (dict | DyTConfig, optional): ``None`` (all defaults), a dict
                of some of the keys, or a :class:`DyTConfig` (returned as
                is).

        Returns:
            DyTConfig: The validated config.

        Raises:
            KeyError: If the dict has a key that is not an option.
            ValueError: If a value is out of its range.
            TypeError: If ``dyt`` is neither None, a dict nor a DyTConfig.
        """
        if isinstance(dyt, cls):
            return dyt
        if dyt is not None and not isinstance(dyt, dict):
            raise TypeError('backbone.dyt must be a dict or a DyTConfig, got '
                            f'{type(dyt).__name__}')
        dyt = dict(dyt or {})
        unknown = set(dyt) - set(cls.keys())
        if unknown:
            raise KeyError(f'unknown key(s) {sorted(unknown)} in '
                           f'backbone.dyt; allowed keys: {sorted(cls.keys())}')
        return cls(**dyt)

    def to_dict(self) -> dict:
        """Every option as a plain dict (the keys of :meth:`keys`)."""
        return asdict(self)

    @property
    def sites(self) -> Tuple[str, ...]:
        """The dispatched sites of :attr:`variant`, in execution order."""
        return VARIANT_SITES[self.variant]

    def flops_fields(self) -> dict:
        """The fields of a FLOPs spec (:mod:`mmdyt.models.dyt.flops`) that
        come from the config: ``variant``, ``bottleneck``,
        ``num_experts``."""
        return dict(
            variant=self.variant,
            bottleneck=self.bottleneck,
            num_experts=self.num_experts)


#: every option and its default, as a dict (derived from :class:`DyTConfig`).
DYT_DEFAULTS = DyTConfig().to_dict()


def parse_dyt_cfg(dyt: Union[None, dict, DyTConfig]) -> dict:
    """Every option of a ``dyt=`` argument as a dict (defaults filled in,
    unknown keys and values out of range rejected); see
    :meth:`DyTConfig.from_dict`."""
    return DyTConfig.from_dict(dyt).to_dict()
