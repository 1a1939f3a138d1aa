# Old name of dyt_vit-b16_8xb16-8x16x1-12e_k400-rawframes.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt_vit-b16_8xb16-8x16x1-12e_k400-rawframes.py']
