# Old name of dyt-r0.1_swin-b_8xb128-100e_svhn.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt-r0.1_swin-b_8xb128-100e_svhn.py']
