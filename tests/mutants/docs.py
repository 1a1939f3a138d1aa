"""Planted bugs in the data guides (``docs/data/``) and the config keys they
document: a page that no longer matches the shipped configs, a config whose
data layout moved without its page, a renamed tool, a checkpoint that no
longer loads unconverted.

Plain data, read by ``tools/mutation_check.py`` (see ``README.md`` here).
"""
DOCS = 'tests/test_docs.py'
VMAE = ('tests/test_models/test_backbones/test_mmaction_vit.py::'
        'test_videomae_config_loads_a_stock_mmaction2_recognizer_checkpoint')

MUTANTS = [
    dict(
        name='docs.video.val_prefix_claim_wrong',
        file='docs/data/video.md',
        find='| `{val,test}_dataloader.dataset.data_prefix.video` | '
        '`videos_val` |',
        replace='| `{val,test}_dataloader.dataset.data_prefix.video` | '
        '`videos_validation` |',
        tests=[DOCS + '::test_config_table_equals_the_configs'],
        why='video.md names a K400 val folder the configs do not read'),
    dict(
        name='docs.video.sthv2_root_moved',
        file='configs/_base_/datasets/sthv2_8x1_video.py',
        find="data_root = 'data/sthv2'",
        replace="data_root = 'data/something-something-v2'",
        tests=[DOCS + '::test_config_table_equals_the_configs'],
        why='SSv2 configs read another root than video.md says'),
    dict(
        name='docs.video.converter_renamed',
        file='docs/data/video.md',
        find='`tools/dataset_converters/digits2video.py`',
        replace='`tools/dataset_converters/digits2videos.py`',
        tests=[DOCS + '::test_every_repo_path_a_page_names_exists'],
        why='video.md names a tool that does not exist'),
    dict(
        name='docs.video.videomae_prefix_dropped',
        file='configs/_base_/models/dyt_videomae_vit-b.py',
        find="            prefix='backbone.')),",
        replace='            )),',
        tests=[VMAE, DOCS + '::test_config_table_equals_the_configs'],
        why="VideoMAE init_cfg without prefix='backbone.': mmaction2's "
        'recognizer checkpoint loads nothing (strict=False)'),
    dict(
        name='docs.seg.reduce_zero_label_claim_wrong',
        file='docs/data/segmentation.md',
        find='| `train_dataloader.dataset.pipeline.1.reduce_zero_label` | '
        '`True` |',
        replace='| `train_dataloader.dataset.pipeline.1.reduce_zero_label`'
        ' | `False` |',
        tests=[DOCS + '::test_config_table_equals_the_configs'],
        why='segmentation.md misstates the ADE20K label reduction'),
    dict(
        name='docs.seg.undocumented_config',
        file='docs/data/segmentation.md',
        find='`dyt_vit-b16_upernet_moe4_coco-stuff164k-512x512_80k.py`, '
        '`dyt-moe4_vit-b16_upernet_8xb2-80k_coco-stuff164k-512x512.py` | '
        '`{train,val,test}_dataloader',
        replace='`dyt-moe4_vit-b16_upernet_8xb2-80k_coco-stuff164k-'
        '512x512.py` | `{train,val,test}_dataloader',
        tests=[DOCS + '::test_config_table_equals_the_configs'],
        why='a shipped COCO-Stuff config missing from the page'),
]
