# Old name of dyt-moe4_vit-b16_64xb64_in1k.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt-moe4_vit-b16_64xb64_in1k.py']
