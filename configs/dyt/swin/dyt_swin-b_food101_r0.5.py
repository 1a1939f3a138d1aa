# Old name of dyt-r0.5_swin-b_8xb128-100e_food101.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt-r0.5_swin-b_8xb128-100e_food101.py']
