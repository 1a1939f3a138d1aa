# Old name of dyt_vit-b16_1xb64-100e_vtab1k-clevr_count.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt_vit-b16_1xb64-100e_vtab1k-clevr_count.py']
