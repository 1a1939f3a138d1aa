# Old name of dyt_vit-b16_upernet_8xb2-160k_ade20k-512x512.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt_vit-b16_upernet_8xb2-160k_ade20k-512x512.py']
