# Old name of dyt_videomae-vit-b_8xb16-16x4x1-12e_k400-video.py (renamed to OpenMMLab's config naming, see
# docs/en/notes/changelog.md); kept for one release. Source: that config.
_base_ = ['./dyt_videomae-vit-b_8xb16-16x4x1-12e_k400-video.py']
